package wxidentity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type vectors struct {
	JWKS     json.RawMessage `json:"jwks"`
	Now      int64           `json:"now"`
	Audience string          `json:"audience"`
	Issuer   string          `json:"issuer"`
	Cases    []struct {
		Name  string `json:"name"`
		Token string `json:"token"`
		Valid bool   `json:"valid"`
		Sub   string `json:"sub"`
		AppID string `json:"appid"`
	} `json:"cases"`
	JWKSURLs []struct {
		Name  string `json:"name"`
		URL   string `json:"url"`
		Valid bool   `json:"valid"`
	} `json:"jwks_urls"`
}

func load(t *testing.T) *vectors {
	t.Helper()
	raw, err := os.ReadFile("../conformance/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func (v *vectors) token(t *testing.T, name string) string {
	t.Helper()
	for _, c := range v.Cases {
		if c.Name == name {
			return c.Token
		}
	}
	t.Fatalf("no case %q", name)
	return ""
}

// jwksWith keeps the JWKS entries with these kids.
func (v *vectors) jwksWith(t *testing.T, kids ...string) []byte {
	var doc struct {
		Keys []map[string]interface{} `json:"keys"`
	}
	if err := json.Unmarshal(v.JWKS, &doc); err != nil {
		t.Fatal(err)
	}
	var keep []map[string]interface{}
	for _, k := range doc.Keys {
		for _, kid := range kids {
			if k["kid"] == kid {
				keep = append(keep, k)
			}
		}
	}
	out, _ := json.Marshal(map[string]interface{}{"keys": keep})
	return out
}

func kidOf(t *testing.T, token string) string {
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	json.Unmarshal(raw, &h) //nolint:errcheck
	return h.Kid
}

const (
	workerCase  = "worker assertion, as captured from the worker"
	rotatedCase = "signed by the rotated-in key (second key in the JWKS)"
)

// fakeFetcher is a fake JWKS endpoint: counts fetches, serves doc, or fails.
type fakeFetcher struct {
	mu    sync.Mutex
	doc   []byte
	fail  bool
	calls int
	delay time.Duration
}

func (f *fakeFetcher) fetch(context.Context) ([]byte, error) {
	f.mu.Lock()
	f.calls++
	doc, fail, delay := f.doc, f.fail, f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	if fail {
		return nil, errors.New("worker unreachable")
	}
	return doc, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func verifierAt(v *vectors, now time.Time, fetch func(context.Context) ([]byte, error)) *Verifier {
	c := func() time.Time { return now }
	return &Verifier{Audience: v.Audience, Issuer: v.Issuer, Now: c, Keys: &JWKSCache{Fetch: fetch, Now: c}}
}

func static(doc []byte) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return doc, nil }
}

func TestConformanceVectors(t *testing.T) {
	v := load(t)
	ver := verifierAt(v, time.Unix(v.Now, 0), static(v.JWKS))
	for _, c := range v.Cases {
		ver.AppID = c.AppID // a case with "appid": the verifier requires it
		id, err := ver.Verify(context.Background(), c.Token)
		if c.Valid && (err != nil || id.OpenID != c.Sub) {
			t.Errorf("%s: want valid %s, got %v %v", c.Name, c.Sub, id, err)
		}
		var e *Error
		if !c.Valid && (err == nil || !errors.As(err, &e)) {
			t.Errorf("%s: want a refusal, got %v %v", c.Name, id, err)
		}
	}
	if len(v.JWKSURLs) == 0 {
		t.Fatal("no JWKS URL cases")
	}
	for _, c := range v.JWKSURLs {
		_, err := New(c.URL, v.Audience)
		if c.Valid != (err == nil) {
			t.Errorf("%s: want accepted=%v, got %v", c.Name, c.Valid, err)
		}
		if err != nil && !strings.Contains(err.Error(), "https") && !strings.Contains(err.Error(), "absolute") {
			t.Errorf("%s: unclear error %v", c.Name, err)
		}
	}
}

func TestLifetimeCapAndAppIDPin(t *testing.T) {
	v := load(t)
	ver := verifierAt(v, time.Unix(v.Now, 0), static(v.JWKS))
	long := v.token(t, "lifetime 121 s: longer than the worker's 2 minutes")
	if _, err := ver.Verify(context.Background(), long); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Fatalf("121 s lifetime: %v", err)
	}
	ver.MaxLifetime = 5 * time.Minute // an origin may allow more, explicitly
	if _, err := ver.Verify(context.Background(), long); err != nil {
		t.Fatalf("121 s lifetime with MaxLifetime 5 min: %v", err)
	}
	other := v.token(t, "appid pinned: another mini-program's assertion")
	if _, err := ver.Verify(context.Background(), other); err != nil {
		t.Fatalf("unpinned: %v", err)
	}
	ver.AppID = "wx2222222222222222"
	if id, err := ver.Verify(context.Background(), other); err != nil || id.AppID != "wx2222222222222222" {
		t.Fatalf("pinned to its own appid: %v %v", id, err)
	}
	if _, err := ver.Verify(context.Background(), v.token(t, workerCase)); err == nil || !strings.Contains(err.Error(), "appid") {
		t.Fatalf("pinned to another appid: %v", err)
	}
}

func TestTypedIdentity(t *testing.T) {
	v := load(t)
	tok := v.token(t, workerCase)
	id, err := verifierAt(v, time.Unix(v.Now, 0), static(v.JWKS)).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var c map[string]interface{}
	json.Unmarshal(raw, &c) //nolint:errcheck
	want := Identity{
		OpenID: c["sub"].(string), UnionID: c["unionid"].(string), AppID: c["appid"].(string),
		Phone: "13800138000", PhoneCountry: "86", JTI: c["jti"].(string),
		ExpiresAt: time.Unix(int64(c["exp"].(float64)), 0),
	}
	if *id != want {
		t.Fatalf("got %+v, want %+v", *id, want)
	}
}

func TestClockDecidesExpiry(t *testing.T) {
	v := load(t)
	tok := v.token(t, workerCase)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var claims struct{ Exp int64 }
	json.Unmarshal(raw, &claims) //nolint:errcheck
	exp := claims.Exp
	if exp == 0 {
		t.Fatal("no exp")
	}
	ctx := context.Background()
	if _, err := verifierAt(v, time.Unix(exp+29, 0), static(v.JWKS)).Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := verifierAt(v, time.Unix(exp+30, 0), static(v.JWKS)).Verify(ctx, tok); err == nil {
		t.Fatal("accepted at exp + leeway")
	}
	short := verifierAt(v, time.Unix(exp+10, 0), static(v.JWKS))
	short.Leeway = 5 * time.Second
	if _, err := short.Verify(ctx, tok); err == nil {
		t.Fatal("accepted past a 5 s leeway")
	}
}

func TestJWKSCacheRefetchFloorAndRotation(t *testing.T) {
	v := load(t)
	workerKid, rotatedKid := kidOf(t, v.token(t, workerCase)), kidOf(t, v.token(t, rotatedCase))
	c := &clock{time.Unix(1000, 0)}
	f := &fakeFetcher{doc: v.jwksWith(t, workerKid)}
	cache := &JWKSCache{Fetch: f.fetch, Now: c.now}
	ctx := context.Background()
	get := func(kid string) bool {
		k, err := cache.Get(ctx, kid)
		if err != nil {
			t.Fatal(err)
		}
		return k != nil
	}
	expect := func(calls int) {
		t.Helper()
		if f.calls != calls {
			t.Fatalf("%d fetches, want %d", f.calls, calls)
		}
	}
	if !get(workerKid) || !get(workerKid) {
		t.Fatal("worker key missing")
	}
	expect(1)
	c.t = c.t.Add(10 * time.Second) // forged kids within the floor: no fetch
	if get("forged-1") || get("forged-2") {
		t.Fatal("forged kid found")
	}
	expect(1)
	c.t = c.t.Add(20 * time.Second) // 30 s on: one refetch, then the floor again
	get("forged-3")
	get("forged-4")
	expect(2)
	f.doc = v.jwksWith(t, rotatedKid, workerKid) // a rotation
	c.t = c.t.Add(29 * time.Second)
	if get(rotatedKid) {
		t.Fatal("refetched within the floor")
	}
	c.t = c.t.Add(time.Second)
	if !get(rotatedKid) || !get(workerKid) {
		t.Fatal("rotated key not picked up")
	}
	expect(3)
}

func TestJWKSCacheMaxAgeFailuresAndRetiredKey(t *testing.T) {
	v := load(t)
	workerKid, rotatedKid := kidOf(t, v.token(t, workerCase)), kidOf(t, v.token(t, rotatedCase))
	c := &clock{time.Unix(0, 0)}
	f := &fakeFetcher{doc: v.jwksWith(t, workerKid), fail: true}
	cache := &JWKSCache{Fetch: f.fetch, Now: c.now, MaxAge: 600 * time.Second}
	ctx := context.Background()

	// Never fetched: jwks_unavailable, and failures respect the floor too.
	for _, s := range []int64{0, 29} {
		c.t = time.Unix(s, 0)
		var e *Error
		if _, err := cache.Get(ctx, workerKid); !errors.As(err, &e) || e.Code != "jwks_unavailable" {
			t.Fatalf("t=%d: %v", s, err)
		}
	}
	if f.calls != 1 {
		t.Fatalf("%d fetches", f.calls)
	}
	f.fail = false
	c.t = time.Unix(30, 0)
	if k, _ := cache.Get(ctx, workerKid); k == nil {
		t.Fatal("no key after recovery")
	}
	c.t = time.Unix(629, 0)
	cache.Get(ctx, workerKid) //nolint:errcheck
	if f.calls != 2 {
		t.Fatalf("refetched a fresh cache: %d", f.calls)
	}
	c.t, f.fail = time.Unix(630, 0), true
	if k, _ := cache.Get(ctx, workerKid); k == nil {
		t.Fatal("a failed refresh dropped the known key")
	}
	c.t, f.fail, f.doc = time.Unix(660, 0), false, v.jwksWith(t, rotatedKid)
	if k, _ := cache.Get(ctx, workerKid); k != nil {
		t.Fatal("a retired key is still accepted")
	}
	if f.calls != 4 {
		t.Fatalf("%d fetches, want 4", f.calls)
	}
}

func TestJWKSCacheConcurrentCallersShareOneFetch(t *testing.T) {
	v := load(t)
	kid := kidOf(t, v.token(t, workerCase))
	f := &fakeFetcher{doc: v.jwksWith(t, kid), delay: 20 * time.Millisecond}
	cache := &JWKSCache{Fetch: f.fetch, Now: func() time.Time { return time.Unix(0, 0) }}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if k, err := cache.Get(context.Background(), kid); k == nil || err != nil {
				t.Error("no key", err)
			}
		}()
	}
	wg.Wait()
	if f.calls != 1 {
		t.Fatalf("%d fetches, want 1", f.calls)
	}
}

// blockingFetcher serves doc once release is closed, counting calls.
type blockingFetcher struct {
	mu      sync.Mutex
	calls   int
	started chan struct{}
	release chan struct{}
	doc     []byte
}

func (f *blockingFetcher) fetch(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if n > 1 {
		select {
		case f.started <- struct{}{}:
		default:
		}
		<-f.release
	}
	return f.doc, nil
}

func TestJWKSCacheSlowFetchDoesNotStallCachedKids(t *testing.T) {
	v := load(t)
	workerKid, rotatedKid := kidOf(t, v.token(t, workerCase)), kidOf(t, v.token(t, rotatedCase))
	c := &clock{time.Unix(v.Now, 0)}
	f := &blockingFetcher{started: make(chan struct{}, 1), release: make(chan struct{}), doc: v.jwksWith(t, workerKid)}
	ver := &Verifier{Audience: v.Audience, Now: c.now, Keys: &JWKSCache{Fetch: f.fetch, Now: c.now}}
	ctx := context.Background()
	if _, err := ver.Verify(ctx, v.token(t, workerCase)); err != nil { // first fetch, fast
		t.Fatal(err)
	}
	c.t = c.t.Add(30 * time.Second)
	f.mu.Lock()
	f.doc = v.jwksWith(t, workerKid, rotatedKid)
	f.mu.Unlock()

	// An unknown kid starts a refetch that hangs (a slow JWKS server).
	rotated := make(chan error, 1)
	go func() {
		_, err := ver.Verify(ctx, v.token(t, rotatedCase))
		rotated <- err
	}()
	select {
	case <-f.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the refetch never started")
	}
	// Meanwhile a verification whose kid is cached goes through at once.
	cached := make(chan error, 1)
	go func() {
		_, err := ver.Verify(ctx, v.token(t, workerCase))
		cached <- err
	}()
	select {
	case err := <-cached:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		close(f.release)
		t.Fatal("a verification with a cached kid waited for the JWKS fetch")
	}
	// A second unknown-kid caller waits for that same fetch; no second fetch.
	second := make(chan error, 1)
	go func() {
		_, err := ver.Verify(ctx, v.token(t, rotatedCase))
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("an unknown kid did not wait for the fetch in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(f.release)
	for _, ch := range []chan error{rotated, second} {
		if err := <-ch; err != nil {
			t.Fatalf("rotated key after the fetch: %v", err)
		}
	}
	if f.calls != 2 {
		t.Fatalf("%d fetches, want 2", f.calls)
	}
}

func TestMiddleware(t *testing.T) {
	v := load(t)
	ver := verifierAt(v, time.Unix(v.Now, 0), static(v.JWKS))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := FromContext(r.Context())
		if !ok {
			w.Write([]byte("anonymous")) //nolint:errcheck
			return
		}
		w.Write([]byte(id.OpenID)) //nolint:errcheck
	})
	serve := func(h http.Handler, values ...string) (int, string) {
		r := httptest.NewRequest("GET", "/api/me", nil)
		for _, val := range values {
			r.Header.Add(Header, val)
		}
		r.Header.Set("X-WX-OpenID", "oForged")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	var sub string
	for _, c := range v.Cases {
		if c.Name == workerCase {
			sub = c.Sub
		}
	}
	good := v.token(t, workerCase)
	tampered := v.token(t, "tampered payload: another openid, original signature")

	if code, body := serve(ver.Middleware(handler), good); code != 200 || body != sub {
		t.Fatalf("valid: %d %s", code, body)
	}
	if code, body := serve(ver.Middleware(handler)); code != 401 || !strings.Contains(body, `"missing_identity"`) {
		t.Fatalf("missing: %d %s", code, body)
	}
	if code, body := serve(ver.Middleware(handler), tampered); code != 401 || !strings.Contains(body, `"invalid_identity"`) {
		t.Fatalf("tampered: %d %s", code, body)
	}
	if code, _ := serve(ver.Middleware(handler), good, good); code != 401 {
		t.Fatalf("two assertions: %d", code)
	}
	if code, body := serve(ver.OptionalMiddleware(handler)); code != 200 || body != "anonymous" {
		t.Fatalf("optional, none: %d %s", code, body)
	}
	if code, _ := serve(ver.OptionalMiddleware(handler), tampered); code != 401 {
		t.Fatalf("optional, tampered: %d", code)
	}
	down := verifierAt(v, time.Unix(v.Now, 0), func(context.Context) ([]byte, error) { return nil, errors.New("down") })
	if code, body := serve(down.Middleware(handler), good); code != 503 || !strings.Contains(body, `"jwks_unavailable"`) {
		t.Fatalf("JWKS down: %d %s", code, body)
	}
}

func TestNewFetchesOverHTTP(t *testing.T) {
	v := load(t)
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(v.JWKS) //nolint:errcheck
	}))
	defer srv.Close()
	ver, err := New(srv.URL+"/.well-known/jwks.json", v.Audience) // http://127.0.0.1: loopback
	if err != nil {
		t.Fatal(err)
	}
	ver.Now = func() time.Time { return time.Unix(v.Now, 0) }
	if _, err := ver.Verify(context.Background(), v.token(t, workerCase)); err != nil || hits != 1 {
		t.Fatalf("%v, %d fetches", err, hits)
	}
}
