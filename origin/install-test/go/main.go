// A user's program: requires github.com/wx-edge/wx-edge/origin/go (a
// replace points it at this repository) and runs the conformance vectors
// through it and through its middleware.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	wxidentity "github.com/wx-edge/wx-edge/origin/go"
)

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var v struct {
		JWKS     json.RawMessage `json:"jwks"`
		Now      int64           `json:"now"`
		Audience string          `json:"audience"`
		Cases    []struct {
			Name, Token, Sub, AppID string
			Valid                   bool
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		panic(err)
	}
	clock := func() time.Time { return time.Unix(v.Now, 0) }
	keys := &wxidentity.JWKSCache{Fetch: func(context.Context) ([]byte, error) { return v.JWKS, nil }, Now: clock}
	passed := 0
	for _, c := range v.Cases {
		ver := &wxidentity.Verifier{Audience: v.Audience, AppID: c.AppID, Now: clock, Keys: keys}
		id, err := ver.Verify(context.Background(), c.Token)
		if (err == nil) != c.Valid || (c.Valid && id.OpenID != c.Sub) {
			fmt.Fprintf(os.Stderr, "go package: wrong verdict for %q: %v\n", c.Name, err)
			os.Exit(1)
		}
		passed++
	}
	ver := &wxidentity.Verifier{Audience: v.Audience, Now: clock, Keys: keys}
	h := ver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := wxidentity.FromContext(r.Context())
		fmt.Fprint(w, id.OpenID)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/me", nil))
	if rec.Code != http.StatusUnauthorized {
		fmt.Fprintf(os.Stderr, "go package: middleware let a request without an assertion through (%d)\n", rec.Code)
		os.Exit(1)
	}
	fmt.Printf("go package: %d/%d conformance cases through %s (v%s), middleware refuses a bare request\n",
		passed, len(v.Cases), "github.com/wx-edge/wx-edge/origin/go", wxidentity.Version)
}
