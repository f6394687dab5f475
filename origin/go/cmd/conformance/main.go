// Command conformance runs this verifier over a vectors file with the clock
// at the file's `now` and prints one JSON line per case:
// {"name", "valid", "sub"?, "error"?}. origin/conformance/check compares.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	wxidentity "github.com/wx-edge/wx-edge/origin/go"
)

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var v struct {
		JWKS     json.RawMessage `json:"jwks"`
		Now      int64           `json:"now"`
		Audience string          `json:"audience"`
		Issuer   string          `json:"issuer"`
		Cases    []struct {
			Name  string `json:"name"`
			Token string `json:"token"`
			AppID string `json:"appid"`
		} `json:"cases"`
		JWKSURLs []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"jwks_urls"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	now := func() time.Time { return time.Unix(v.Now, 0) }
	keys := &wxidentity.JWKSCache{
		Fetch: func(context.Context) ([]byte, error) { return v.JWKS, nil },
		Now:   now,
	}
	out := json.NewEncoder(os.Stdout)
	for _, c := range v.Cases {
		// A case with "appid": a verifier that requires that appid.
		verifier := &wxidentity.Verifier{Audience: v.Audience, Issuer: v.Issuer, AppID: c.AppID, Now: now, Keys: keys}
		id, err := verifier.Verify(context.Background(), c.Token)
		var refusal *wxidentity.Error
		switch {
		case err == nil:
			out.Encode(map[string]interface{}{"name": c.Name, "valid": true, "sub": id.OpenID}) //nolint:errcheck
		case errors.As(err, &refusal):
			out.Encode(map[string]interface{}{"name": c.Name, "valid": false, "error": err.Error()}) //nolint:errcheck
		default:
			fmt.Fprintln(os.Stderr, c.Name, err)
			os.Exit(1)
		}
	}
	for _, c := range v.JWKSURLs {
		if _, err := wxidentity.New(c.URL, v.Audience); err != nil {
			out.Encode(map[string]interface{}{"name": c.Name, "valid": false, "error": err.Error()}) //nolint:errcheck
		} else {
			out.Encode(map[string]interface{}{"name": c.Name, "valid": true}) //nolint:errcheck
		}
	}
}
