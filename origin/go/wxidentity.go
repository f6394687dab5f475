// The verifier: see doc.go for the package documentation.

package wxidentity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

const (
	Issuer = "wx-edge"
	Typ    = "wx-identity+jwt"
	Header = "X-WX-Identity"
)

var (
	compact = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	jwkX    = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	b64     = base64.RawURLEncoding
)

// Identity is what a verified assertion vouches for.
type Identity struct {
	OpenID       string
	UnionID      string // "" when WeChat gave none
	AppID        string
	Phone        string // purePhoneNumber, "" when none is bound
	PhoneCountry string
	JTI          string
	ExpiresAt    time.Time
}

// Error is a refusal. Code is "missing_identity", "invalid_identity" or
// "jwks_unavailable".
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalid(format string, a ...interface{}) *Error {
	return &Error{"invalid_identity", "X-WX-Identity rejected: " + fmt.Sprintf(format, a...)}
}

// CheckJWKSURL refuses a JWKS URL that is not https, except for a loopback
// host (127.0.0.0/8, localhost, [::1]: development and tests): over plain
// http anyone on the path could hand the verifier their own key.
func CheckJWKSURL(jwksURL string) error {
	u, err := url.Parse(jwksURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("wxidentity: the JWKS URL %q is not an absolute URL", jwksURL)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("wxidentity: the JWKS URL must be https:// (plain http only for a loopback host), got %q", jwksURL)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HTTPFetcher fetches a JWKS document from url (5 s timeout). A URL that
// CheckJWKSURL refuses is never fetched.
func HTTPFetcher(url string) func(context.Context) ([]byte, error) {
	if err := CheckJWKSURL(url); err != nil {
		return func(context.Context) ([]byte, error) { return nil, err }
	}
	client := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", url, res.StatusCode)
		}
		return io.ReadAll(io.LimitReader(res.Body, 1<<20))
	}
}

// Ed25519Keys returns the usable keys of a JWKS document: OKP/Ed25519
// public keys with a kid, by kid. Other and malformed entries are skipped.
func Ed25519Keys(doc []byte) (map[string]ed25519.PublicKey, error) {
	var jwks struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &jwks); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range jwks.Keys {
		kty, _ := str(k, "kty")
		crv, _ := str(k, "crv")
		kid, _ := str(k, "kid")
		x, _ := str(k, "x")
		if kty != "OKP" || crv != "Ed25519" || kid == "" || !jwkX.MatchString(x) {
			continue
		}
		if use, ok := str(k, "use"); has(k, "use") && (!ok || use != "sig") {
			continue
		}
		if alg, ok := str(k, "alg"); has(k, "alg") && (!ok || alg != "EdDSA") {
			continue
		}
		raw, err := b64.DecodeString(x)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			continue
		}
		keys[kid] = ed25519.PublicKey(raw)
	}
	return keys, nil
}

// JWKSCache caches the JWKS. Get refetches when the kid is unknown or the
// cache is older than MaxAge, but never more than once per
// MinRefetchInterval (failed attempts count), so forged kids cannot hammer
// the worker. A failed refetch keeps the keys already known. Safe for
// concurrent use. No lock is held while fetching: one fetch is in flight at
// a time; a caller whose kid is cached gets it at once (even while a fetch
// is under way), and only a caller that needs a kid the cache lacks waits
// for the fetch in flight.
type JWKSCache struct {
	Fetch              func(context.Context) ([]byte, error)
	Now                func() time.Time
	MinRefetchInterval time.Duration // default 30 s
	MaxAge             time.Duration // default 5 min, the JWKS response's max-age

	mu          sync.Mutex
	keys        map[string]ed25519.PublicKey
	fetchedAt   time.Time
	attemptedAt time.Time
	attempted   bool
	fetched     bool
	inflight    chan struct{} // closed when the fetch under way ends; nil if none
}

// Get returns the key for kid, or nil if the JWKS has none.
func (c *JWKSCache) Get(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	now := c.now()
	maxAge, floor := c.MaxAge, c.MinRefetchInterval
	if maxAge == 0 {
		maxAge = 5 * time.Minute
	}
	if floor == 0 {
		floor = 30 * time.Second
	}
	k, known := c.keys[kid]
	if known && c.fetched && now.Sub(c.fetchedAt) < maxAge {
		c.mu.Unlock()
		return k, nil
	}
	if wait := c.inflight; wait != nil {
		if known {
			// A refetch for age is under way: the cached key stands meanwhile.
			c.mu.Unlock()
			return k, nil
		}
		c.mu.Unlock()
		select { // an unknown kid: wait for that one fetch, not for the lock
		case <-wait:
		case <-ctx.Done():
			return nil, &Error{"jwks_unavailable", "the JWKS could not be fetched: " + ctx.Err().Error()}
		}
		return c.lookup(kid)
	}
	if c.attempted && now.Sub(c.attemptedAt) < floor {
		c.mu.Unlock()
		return c.lookup(kid)
	}
	c.attempted, c.attemptedAt = true, now
	done := make(chan struct{})
	c.inflight = done
	c.mu.Unlock()

	c.refresh(ctx, done)
	return c.lookup(kid)
}

// refresh fetches the JWKS without the lock, stores it, and ends the fetch
// in flight (even if Fetch panics, so no waiter is left hanging).
func (c *JWKSCache) refresh(ctx context.Context, done chan struct{}) {
	var keys map[string]ed25519.PublicKey
	var err error
	defer func() {
		c.mu.Lock()
		if keys != nil {
			c.keys, c.fetchedAt, c.fetched = keys, c.now(), true
		}
		c.inflight = nil
		close(done)
		c.mu.Unlock()
	}()
	doc, err := c.Fetch(ctx)
	if err == nil {
		keys, err = Ed25519Keys(doc)
	}
	if err != nil {
		keys = nil
		log.Printf("wxidentity: JWKS fetch failed: %v", err)
	}
}

// lookup is the cache's answer for kid without fetching.
func (c *JWKSCache) lookup(kid string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fetched {
		return nil, &Error{"jwks_unavailable", "the JWKS could not be fetched"}
	}
	return c.keys[kid], nil
}

func (c *JWKSCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// MaxLifetime is the longest exp − iat accepted by default: the worker's
// assertions live 2 minutes (IDENTITY_TTL in src/token/identity.rs).
const MaxLifetime = 120 * time.Second

// Verifier checks assertions for one origin.
type Verifier struct {
	Audience    string        // your origin as in the worker's ORIGIN_URL, e.g. https://api.example.com
	Issuer      string        // default "wx-edge"
	AppID       string        // if set, the appid claim must equal it (one mini-program of several)
	Leeway      time.Duration // clock skew allowed, default 30 s
	MaxLifetime time.Duration // longest exp − iat accepted, default MaxLifetime (2 min)
	Now         func() time.Time
	Keys        *JWKSCache
}

// New returns a Verifier that fetches the JWKS from jwksURL, which must be
// https:// (plain http only for a loopback host; see CheckJWKSURL).
func New(jwksURL, audience string) (*Verifier, error) {
	if err := CheckJWKSURL(jwksURL); err != nil {
		return nil, err
	}
	if audience == "" {
		return nil, fmt.Errorf("wxidentity: audience is required (your origin, e.g. https://api.example.com)")
	}
	v := &Verifier{Audience: audience}
	v.Keys = &JWKSCache{Fetch: HTTPFetcher(jwksURL), Now: func() time.Time { return v.now() }}
	return v, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Verify checks one X-WX-Identity value.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, &Error{"missing_identity", "X-WX-Identity is missing"}
	}
	if !compact.MatchString(token) {
		return nil, invalid("not a compact JWS")
	}
	parts := strings.Split(token, ".")
	header, err := segment(parts[0])
	if err != nil {
		return nil, invalid("unreadable header")
	}
	if alg, _ := str(header, "alg"); alg != "EdDSA" {
		return nil, invalid("alg must be EdDSA")
	}
	if typ, _ := str(header, "typ"); typ != Typ {
		return nil, invalid("typ must be %s", Typ)
	}
	kid, _ := str(header, "kid")
	if kid == "" {
		return nil, invalid("no kid")
	}
	if has(header, "crit") {
		return nil, invalid("crit is not supported")
	}
	key, err := v.Keys.Get(ctx, kid)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, invalid("kid not in the JWKS")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, invalid("bad signature")
	}
	claims, err := segment(parts[1])
	if err != nil {
		return nil, invalid("unreadable payload")
	}
	issuer := v.Issuer
	if issuer == "" {
		issuer = Issuer
	}
	if iss, _ := str(claims, "iss"); iss != issuer {
		return nil, invalid("wrong iss")
	}
	if aud, ok := str(claims, "aud"); !ok || aud != v.Audience || v.Audience == "" {
		return nil, invalid("wrong aud")
	}
	leeway := v.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	now := float64(v.now().UnixNano()) / 1e9
	l := leeway.Seconds()
	exp, okExp := num(claims, "exp")
	iat, okIat := num(claims, "iat")
	if !okExp || !okIat {
		return nil, invalid("exp and iat must be numbers")
	}
	if now >= exp+l {
		return nil, invalid("expired")
	}
	if iat > now+l {
		return nil, invalid("iat is in the future")
	}
	maxLife := v.MaxLifetime
	if maxLife == 0 {
		maxLife = MaxLifetime
	}
	if exp-iat > maxLife.Seconds() {
		return nil, invalid("lifetime (exp - iat) longer than %s", maxLife)
	}
	if has(claims, "nbf") {
		if nbf, ok := num(claims, "nbf"); !ok || nbf > now+l {
			return nil, invalid("not valid yet (nbf)")
		}
	}
	sub, _ := str(claims, "sub")
	if sub == "" {
		return nil, invalid("sub must be the openid")
	}
	appid, _ := str(claims, "appid")
	if v.AppID != "" && appid != v.AppID {
		return nil, invalid("wrong appid")
	}
	id := &Identity{OpenID: sub, ExpiresAt: time.Unix(0, int64(exp*1e9))}
	id.UnionID, _ = str(claims, "unionid")
	id.AppID = appid
	id.Phone, _ = str(claims, "phone")
	id.PhoneCountry, _ = str(claims, "phone_country")
	id.JTI, _ = str(claims, "jti")
	return id, nil
}

type ctxKey struct{}

// FromContext returns the identity the middleware verified (nil, false for
// an optional request that carried none).
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(*Identity)
	return id, ok && id != nil
}

// Middleware refuses requests without a valid assertion: 401
// {"error":"missing_identity"|"invalid_identity"}, or 503 "jwks_unavailable".
func (v *Verifier) Middleware(next http.Handler) http.Handler { return v.middleware(next, false) }

// OptionalMiddleware lets a request without X-WX-Identity through (a
// PUBLIC_PATHS request without a token); a present but invalid one is refused.
func (v *Verifier) OptionalMiddleware(next http.Handler) http.Handler {
	return v.middleware(next, true)
}

func (v *Verifier) middleware(next http.Handler, optional bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(Header)
		if optional && len(values) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		token := strings.Join(values, ",") // two headers are refused, not picked from
		id, err := v.Verify(r.Context(), token)
		if err != nil {
			status, code := http.StatusUnauthorized, "invalid_identity"
			if e, ok := err.(*Error); ok {
				code = e.Code
			}
			message := "this API is reachable only through wx-edge"
			if code == "jwks_unavailable" {
				status, message = http.StatusServiceUnavailable, "identity keys are unavailable; try again"
			}
			body, _ := json.Marshal(map[string]string{"error": code, "message": message})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(body) //nolint:errcheck
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// ---- JSON helpers: exact member names (encoding/json's struct decoding
// matches case-insensitively), null is not a value.

func segment(s string) (map[string]json.RawMessage, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object")
	}
	return m, nil
}

func has(m map[string]json.RawMessage, k string) bool {
	_, ok := m[k]
	return ok
}

func str(m map[string]json.RawMessage, k string) (string, bool) {
	raw, ok := m[k]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func num(m map[string]json.RawMessage, k string) (float64, bool) {
	raw, ok := m[k]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
