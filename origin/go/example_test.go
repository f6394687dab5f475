package wxidentity_test

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

// vectors reads the conformance vectors: an assertion captured from the
// real worker, its JWKS and the time it was made.
func vectors() (jwks []byte, now time.Time, audience, token, sub string) {
	raw, err := os.ReadFile("../conformance/vectors.json")
	if err != nil {
		panic(err)
	}
	var v struct {
		JWKS     json.RawMessage `json:"jwks"`
		Now      int64           `json:"now"`
		Audience string          `json:"audience"`
		Cases    []struct {
			Name  string `json:"name"`
			Token string `json:"token"`
			Sub   string `json:"sub"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		panic(err)
	}
	for _, c := range v.Cases {
		if c.Name == "worker assertion, as captured from the worker" {
			return v.JWKS, time.Unix(v.Now, 0), v.Audience, c.Token, c.Sub
		}
	}
	panic("no worker assertion in the vectors")
}

// A Verifier with a fixed clock and JWKS (as a test would build it; in
// production, New with the worker's JWKS URL) checks an assertion the
// worker made.
func ExampleVerifier_Verify() {
	jwks, now, audience, token, sub := vectors()
	clock := func() time.Time { return now }
	v := &wxidentity.Verifier{
		Audience: audience,
		Now:      clock,
		Keys: &wxidentity.JWKSCache{
			Fetch: func(context.Context) ([]byte, error) { return jwks, nil },
			Now:   clock,
		},
	}
	id, err := v.Verify(context.Background(), token)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println(id.OpenID == sub, id.PhoneCountry)

	v.AppID = "wx0000000000000000" // pinned to another mini-program
	_, err = v.Verify(context.Background(), token)
	fmt.Println(err)
	// Output:
	// true 86
	// X-WX-Identity rejected: wrong appid
}

// The middleware lets a request through with the identity in its context,
// and answers 401 for one without an assertion.
func ExampleVerifier_Middleware() {
	jwks, now, audience, token, sub := vectors()
	clock := func() time.Time { return now }
	v := &wxidentity.Verifier{
		Audience: audience,
		Now:      clock,
		Keys:     &wxidentity.JWKSCache{Fetch: func(context.Context) ([]byte, error) { return jwks, nil }, Now: clock},
	}
	api := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := wxidentity.FromContext(r.Context())
		fmt.Fprint(w, id.OpenID == sub)
	}))

	req := httptest.NewRequest("GET", "/api/me", nil)
	req.Header.Set(wxidentity.Header, token)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/api/me", nil))
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 200 true
	// 401 {"error":"missing_identity","message":"this API is reachable only through wx-edge"}
}

// New refuses a JWKS URL over plain http to anything but a loopback host.
func ExampleNew() {
	_, err := wxidentity.New("http://edge.example.com/.well-known/jwks.json", "https://api.example.com")
	fmt.Println(err != nil)
	v, err := wxidentity.New("https://edge.example.com/.well-known/jwks.json", "https://api.example.com")
	fmt.Println(err == nil, v.Audience)
	// Output:
	// true
	// true https://api.example.com
}
