// Package wxidentity verifies wx-edge's X-WX-Identity assertion with the
// standard library only (crypto/ed25519, encoding/json), and offers a
// net/http middleware.
//
// Install (the module lives in the origin/go folder of the wx-edge
// repository; its package is named wxidentity):
//
//	go get github.com/wx-edge/wx-edge/origin/go@latest
//
//	import wxidentity "github.com/wx-edge/wx-edge/origin/go"
//
// Use:
//
//	v, err := wxidentity.New("https://edge.example.com/.well-known/jwks.json", "https://api.example.com")
//	v.AppID = "wx1111111111111111"   // optional: only this mini-program's assertions
//	mux.Handle("/api/", v.Middleware(api))
//	// in a handler:
//	id, _ := wxidentity.FromContext(r.Context())   // id.OpenID, id.UnionID, id.AppID, id.Phone
//
// Rules (the same in every verifier in origin/, pinned by origin/conformance):
// compact JWS of base64url segments; header alg exactly "EdDSA" (never taken
// from the token otherwise), typ exactly "wx-identity+jwt", a kid, no crit;
// the key is the JWKS entry with that kid, and only an OKP/Ed25519 one; iss
// "wx-edge", aud a string equal to Audience, sub a non-empty string, exp and
// iat numbers with now < exp + leeway and iat <= now + leeway (nbf likewise
// if present) and exp - iat at most MaxLifetime; appid equal to AppID when
// set. The JWKS URL must be https (loopback excepted). The JWKS is cached;
// an unknown kid (a rotation) or a cache older than MaxAge refetches it, at
// most once per MinRefetchInterval.
//
// The module is versioned with the worker: Version, and the tag
// origin/go/vX.Y.Z in the repository.
package wxidentity
