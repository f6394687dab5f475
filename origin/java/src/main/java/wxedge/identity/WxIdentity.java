package wxedge.identity;

import java.io.IOException;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Logger;
import java.util.regex.Pattern;

/**
 * Verifies wx-edge's {@code X-WX-Identity} assertion with the JDK only
 * (Ed25519 needs JDK 15+), plus a servlet-style filter written against a
 * tiny interface, so this file compiles without servlet or Spring jars.
 *
 * <pre>{@code
 * var verifier = new WxIdentity.Verifier(
 *     URI.create("https://edge.example.com/.well-known/jwks.json"),
 *     "https://api.example.com")                // your ORIGIN_URL's origin
 *     .withAppid("wx1111111111111111");         // optional: only this mini-program
 * WxIdentity.Identity id = verifier.verify(request.getHeader("X-WX-Identity"));
 * id.openid(); id.unionid(); id.appid(); id.phone();
 * }</pre>
 *
 * <p>Rules (the same in every verifier in origin/, pinned by
 * origin/conformance): compact JWS of base64url segments; header alg exactly
 * "EdDSA" (never taken from the token otherwise), typ exactly
 * "wx-identity+jwt", a kid, no crit; the key is the JWKS entry with that kid,
 * and only an OKP/Ed25519 one; iss "wx-edge", aud a string equal to the
 * audience, sub a non-empty string, exp and iat numbers with
 * now &lt; exp + leeway and iat &lt;= now + leeway (nbf likewise if present),
 * exp - iat at most maxLifetime (the worker's 2 minutes), appid equal to the
 * pinned one if any. The JWKS URL must be https (loopback excepted). The JWKS
 * is cached; an unknown kid (a rotation) or a cache older than
 * maxAge refetches it, at most once per minRefetchInterval.
 */
public final class WxIdentity {
    public static final String ISSUER = "wx-edge";
    public static final String TYP = "wx-identity+jwt";
    public static final String HEADER = "X-WX-Identity";

    private static final Pattern COMPACT = Pattern.compile("[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+");
    private static final Pattern JWK_X = Pattern.compile("[A-Za-z0-9_-]{43}");
    /** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow. */
    private static final byte[] ED25519_SPKI_PREFIX = {
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    };
    private static final Logger LOG = Logger.getLogger(WxIdentity.class.getName());

    private WxIdentity() {}

    /** What a verified assertion vouches for; absent parts are null. */
    public record Identity(
            String openid, String unionid, String appid, String phone, String phoneCountry, String jti,
            double expiresAt) {}

    /** A refusal; code is "missing_identity", "invalid_identity" or "jwks_unavailable". */
    public static final class IdentityException extends Exception {
        private static final long serialVersionUID = 1L;
        private final String code;

        public IdentityException(String code, String message) {
            super(message);
            this.code = code;
        }

        public String code() {
            return code;
        }
    }

    private static IdentityException invalid(String why) {
        return new IdentityException("invalid_identity", "X-WX-Identity rejected: " + why);
    }

    /** Returns the JWKS document as JSON text. */
    @FunctionalInterface
    public interface JwksFetcher {
        String fetch() throws Exception;
    }

    /** The longest exp - iat accepted by default: the worker's assertions live 2 minutes (IDENTITY_TTL). */
    public static final Duration MAX_LIFETIME = Duration.ofSeconds(120);

    /**
     * Throws IllegalArgumentException unless the URL is https://, or http:// to a
     * loopback host (127.0.0.0/8, localhost, [::1]: development and tests). Over
     * plain http anyone on the path could hand the verifier their own key.
     */
    public static void checkJwksUrl(URI url) {
        String scheme = url == null ? null : url.getScheme();
        String host = url == null ? null : url.getHost();
        if (scheme == null || host == null || host.isEmpty()) {
            throw new IllegalArgumentException("the JWKS URL " + url + " is not an absolute URL");
        }
        if (scheme.equalsIgnoreCase("https")) return;
        if (scheme.equalsIgnoreCase("http") && isLoopback(host)) return;
        throw new IllegalArgumentException("the JWKS URL must be https:// (plain http only for a loopback host), got " + url);
    }

    private static final Pattern IPV4_LOOPBACK = Pattern.compile("127\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");

    private static boolean isLoopback(String host) {
        if (host.equalsIgnoreCase("localhost") || host.equals("[::1]")) return true;
        if (!IPV4_LOOPBACK.matcher(host).matches()) return false; // a literal only: never resolve a name here
        for (String octet : host.split("\\.")) if (Integer.parseInt(octet) > 255) return false;
        return true;
    }

    /** Fetches the JWKS from a URL (5 s timeouts); the URL must pass {@link #checkJwksUrl}. */
    public static JwksFetcher httpFetcher(URI jwksUrl) {
        checkJwksUrl(jwksUrl);
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        return () -> {
            HttpRequest req = HttpRequest.newBuilder(jwksUrl)
                    .timeout(Duration.ofSeconds(5))
                    .header("Accept", "application/json")
                    .GET()
                    .build();
            HttpResponse<String> res = client.send(req, HttpResponse.BodyHandlers.ofString());
            if (res.statusCode() != 200) throw new IOException("GET " + jwksUrl + ": HTTP " + res.statusCode());
            return res.body();
        };
    }

    /** The usable keys of a JWKS: OKP/Ed25519 public keys with a kid, by kid. */
    public static Map<String, PublicKey> ed25519Keys(String jwksJson) {
        Map<String, PublicKey> keys = new HashMap<>();
        if (!(Json.parse(jwksJson) instanceof Map<?, ?> doc) || !(doc.get("keys") instanceof List<?> list)) {
            throw new IllegalArgumentException("not a JWKS");
        }
        for (Object o : list) {
            if (!(o instanceof Map<?, ?> k)) continue;
            String kid = str(k, "kid"), x = str(k, "x");
            if (!"OKP".equals(str(k, "kty")) || !"Ed25519".equals(str(k, "crv"))) continue;
            if (kid == null || kid.isEmpty() || x == null || !JWK_X.matcher(x).matches()) continue;
            if (k.containsKey("use") && !"sig".equals(str(k, "use"))) continue;
            if (k.containsKey("alg") && !"EdDSA".equals(str(k, "alg"))) continue;
            try {
                byte[] raw = Base64.getUrlDecoder().decode(x);
                byte[] der = new byte[ED25519_SPKI_PREFIX.length + raw.length];
                System.arraycopy(ED25519_SPKI_PREFIX, 0, der, 0, ED25519_SPKI_PREFIX.length);
                System.arraycopy(raw, 0, der, ED25519_SPKI_PREFIX.length, raw.length);
                keys.put(kid, KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(der)));
            } catch (IllegalArgumentException | GeneralSecurityException e) {
                // an unusable entry is skipped, not fatal for the others
            }
        }
        return keys;
    }

    /**
     * The JWKS, cached. get(kid) refetches when the kid is unknown or the cache
     * is older than maxAge, but never more than once per minRefetchInterval
     * (failed attempts count), so forged kids cannot hammer the worker. A
     * failed refetch keeps the keys already known. Thread-safe, and no lock is
     * held while fetching: one fetch is in flight at a time; a caller whose kid
     * is cached gets it at once (even while a refetch for age is under way),
     * and only a caller that needs a kid the cache lacks waits for the fetch
     * in flight.
     */
    public static final class JwksCache {
        private final JwksFetcher fetcher;
        private final Clock clock;
        private final Duration minRefetchInterval;
        private final Duration maxAge;
        private Map<String, PublicKey> keys = Map.of();
        private long fetchedAt;
        private long attemptedAt;
        private boolean attempted;
        private boolean fetched;
        /** Completed when the fetch under way ends; null if none. */
        private CompletableFuture<Void> inflight;

        public JwksCache(JwksFetcher fetcher, Clock clock, Duration minRefetchInterval, Duration maxAge) {
            this.fetcher = fetcher;
            this.clock = clock;
            this.minRefetchInterval = minRefetchInterval;
            this.maxAge = maxAge;
        }

        public JwksCache(JwksFetcher fetcher, Clock clock) {
            this(fetcher, clock, Duration.ofSeconds(30), Duration.ofMinutes(5));
        }

        /** The key for kid, or null if the JWKS has none. */
        public PublicKey get(String kid) throws IdentityException {
            CompletableFuture<Void> wait;
            CompletableFuture<Void> done = null;
            synchronized (this) {
                long now = clock.millis();
                PublicKey known = keys.get(kid);
                if (known != null && fetched && now - fetchedAt < maxAge.toMillis()) return known;
                wait = inflight;
                if (wait != null && known != null) return known; // a refetch for age is under way: the cached key stands
                if (wait == null && (!attempted || now - attemptedAt >= minRefetchInterval.toMillis())) {
                    attempted = true;
                    attemptedAt = now;
                    done = new CompletableFuture<>();
                    inflight = done;
                }
            }
            if (wait != null) {
                wait.join(); // an unknown kid: wait for that one fetch, not for a lock
            } else if (done != null) {
                Map<String, PublicKey> fresh = null;
                try {
                    fresh = ed25519Keys(fetcher.fetch()); // without the lock
                } catch (Exception e) {
                    LOG.warning("JWKS fetch failed: " + e);
                } finally {
                    synchronized (this) {
                        if (fresh != null) {
                            keys = fresh;
                            fetchedAt = clock.millis();
                            fetched = true;
                        }
                        inflight = null;
                    }
                    done.complete(null);
                }
            }
            synchronized (this) {
                if (!fetched) throw new IdentityException("jwks_unavailable", "the JWKS could not be fetched");
                return keys.get(kid);
            }
        }
    }

    /** Checks assertions for one origin. */
    public static final class Verifier {
        private final String audience;
        private final String issuer;
        private final Duration leeway;
        private final Clock clock;
        private final JwksCache keys;
        private final String appid;
        private final Duration maxLifetime;

        /**
         * appid: if not null, the assertion's appid must equal it (one mini-program of
         * several); maxLifetime: the longest exp - iat accepted (the worker's is 2 minutes).
         */
        public Verifier(String audience, String issuer, Duration leeway, Clock clock, JwksCache keys, String appid,
                Duration maxLifetime) {
            if (audience == null || audience.isEmpty()) {
                throw new IllegalArgumentException("audience is required (your origin, e.g. https://api.example.com)");
            }
            if (appid != null && appid.isEmpty()) throw new IllegalArgumentException("appid, when given, is not empty");
            this.audience = audience;
            this.issuer = issuer;
            this.leeway = leeway;
            this.clock = clock;
            this.keys = keys;
            this.appid = appid;
            this.maxLifetime = maxLifetime;
        }

        public Verifier(String audience, String issuer, Duration leeway, Clock clock, JwksCache keys) {
            this(audience, issuer, leeway, clock, keys, null, MAX_LIFETIME);
        }

        /**
         * The usual setup: the worker's JWKS URL (https://, or http:// to a loopback
         * host; otherwise IllegalArgumentException), your origin, the system clock, 30 s leeway.
         */
        public Verifier(URI jwksUrl, String audience) {
            this(audience, ISSUER, Duration.ofSeconds(30), Clock.systemUTC(),
                    new JwksCache(httpFetcher(jwksUrl), Clock.systemUTC()));
        }

        /** This verifier (same JWKS cache), requiring the assertion's appid to equal appid. */
        public Verifier withAppid(String appid) {
            return new Verifier(audience, issuer, leeway, clock, keys, appid, maxLifetime);
        }

        /** This verifier (same JWKS cache), accepting an exp - iat up to maxLifetime. */
        public Verifier withMaxLifetime(Duration maxLifetime) {
            return new Verifier(audience, issuer, leeway, clock, keys, appid, maxLifetime);
        }

        public Identity verify(String token) throws IdentityException {
            if (token == null || token.isEmpty()) throw new IdentityException("missing_identity", "X-WX-Identity is missing");
            if (!COMPACT.matcher(token).matches()) throw invalid("not a compact JWS");
            String[] parts = token.split("\\.");
            Map<?, ?> header = segment(parts[0]);
            if (header == null) throw invalid("unreadable header");
            if (!"EdDSA".equals(str(header, "alg"))) throw invalid("alg must be EdDSA");
            if (!TYP.equals(str(header, "typ"))) throw invalid("typ must be " + TYP);
            String kid = str(header, "kid");
            if (kid == null || kid.isEmpty()) throw invalid("no kid");
            if (header.containsKey("crit")) throw invalid("crit is not supported");
            PublicKey key = keys.get(kid);
            if (key == null) throw invalid("kid not in the JWKS");
            try {
                Signature s = Signature.getInstance("Ed25519");
                s.initVerify(key);
                s.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
                if (!s.verify(Base64.getUrlDecoder().decode(parts[2]))) throw invalid("bad signature");
            } catch (GeneralSecurityException | IllegalArgumentException e) {
                throw invalid("bad signature");
            }
            Map<?, ?> claims = segment(parts[1]);
            if (claims == null) throw invalid("unreadable payload");
            if (!issuer.equals(str(claims, "iss"))) throw invalid("wrong iss");
            if (!audience.equals(str(claims, "aud"))) throw invalid("wrong aud");
            Double exp = num(claims, "exp"), iat = num(claims, "iat");
            if (exp == null || iat == null) throw invalid("exp and iat must be numbers");
            double now = clock.millis() / 1000.0, l = leeway.toMillis() / 1000.0;
            if (now >= exp + l) throw invalid("expired");
            if (iat > now + l) throw invalid("iat is in the future");
            if (exp - iat > maxLifetime.toMillis() / 1000.0) {
                throw invalid("lifetime (exp - iat) longer than " + maxLifetime.toSeconds() + " s");
            }
            if (claims.containsKey("nbf")) {
                Double nbf = num(claims, "nbf");
                if (nbf == null || nbf > now + l) throw invalid("not valid yet (nbf)");
            }
            String sub = str(claims, "sub");
            if (sub == null || sub.isEmpty()) throw invalid("sub must be the openid");
            if (appid != null && !appid.equals(str(claims, "appid"))) throw invalid("wrong appid");
            return new Identity(sub, str(claims, "unionid"), str(claims, "appid"), str(claims, "phone"),
                    str(claims, "phone_country"), str(claims, "jti"), exp);
        }
    }

    // ------------------------------------------------------------ the filter

    /** The little a filter needs from a request/response pair (adapt HttpServletRequest/Response to it). */
    public interface HttpExchange {
        /** Every value of a request header, by case-insensitive name (empty if none). */
        List<String> requestHeaders(String name);

        void setAttribute(String name, Object value);

        void respond(int status, String contentType, String body) throws IOException;
    }

    /**
     * Servlet-style: {@code if (filter.filter(exchange)) chain.doFilter(req, res);}. On
     * success the identity is the request attribute {@link #ATTRIBUTE}; otherwise 401
     * {"error":"missing_identity"|"invalid_identity"}, or 503 "jwks_unavailable", has
     * been sent. With optional=true a request without the header passes (attribute null).
     */
    public static final class Filter {
        public static final String ATTRIBUTE = "wxIdentity";
        private final Verifier verifier;
        private final boolean optional;

        public Filter(Verifier verifier, boolean optional) {
            this.verifier = verifier;
            this.optional = optional;
        }

        /** True if the request may go on; false if a refusal was sent. */
        public boolean filter(HttpExchange ex) throws IOException {
            List<String> values = ex.requestHeaders(HEADER);
            if (optional && values.isEmpty()) {
                ex.setAttribute(ATTRIBUTE, null);
                return true;
            }
            try {
                // Two headers are refused, not picked from.
                ex.setAttribute(ATTRIBUTE, verifier.verify(String.join(",", values)));
                return true;
            } catch (IdentityException e) {
                boolean down = "jwks_unavailable".equals(e.code());
                String message = down ? "identity keys are unavailable; try again" : "this API is reachable only through wx-edge";
                ex.respond(down ? 503 : 401, "application/json",
                        "{\"error\":" + Json.quote(e.code()) + ",\"message\":" + Json.quote(message) + "}");
                return false;
            }
        }
    }

    // ------------------------------------------------------ helpers and JSON

    private static Map<?, ?> segment(String s) {
        try {
            return Json.parse(new String(Base64.getUrlDecoder().decode(s), StandardCharsets.UTF_8)) instanceof Map<?, ?> m ? m : null;
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static String str(Map<?, ?> m, String k) {
        return m.get(k) instanceof String s ? s : null;
    }

    private static Double num(Map<?, ?> m, String k) {
        return m.get(k) instanceof BigDecimal d && Double.isFinite(d.doubleValue()) ? d.doubleValue() : null;
    }

    /** A small strict JSON reader (objects → LinkedHashMap, numbers → BigDecimal) and string quoting. */
    public static final class Json {
        private final String s;
        private int i;
        private int depth;

        private Json(String s) {
            this.s = s;
        }

        /** Parses one JSON value; IllegalArgumentException if s is not exactly that. */
        public static Object parse(String s) {
            Json p = new Json(s);
            Object v = p.value();
            p.ws();
            if (p.i != s.length()) throw p.error("trailing characters");
            return v;
        }

        public static String quote(String v) {
            StringBuilder b = new StringBuilder("\"");
            for (char c : v.toCharArray()) {
                switch (c) {
                    case '"' -> b.append("\\\"");
                    case '\\' -> b.append("\\\\");
                    case '\n' -> b.append("\\n");
                    case '\r' -> b.append("\\r");
                    case '\t' -> b.append("\\t");
                    default -> {
                        if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                        else b.append(c);
                    }
                }
            }
            return b.append('"').toString();
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON: " + what + " at " + i);
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }

        private Object value() {
            ws();
            if (i >= s.length()) throw error("unexpected end");
            char c = s.charAt(i);
            if (c == '{' || c == '[') {
                if (++depth > 64) throw error("too deep");
                Object v = c == '{' ? object() : array();
                depth--;
                return v;
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            return number();
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == '}') { i++; return m; }
            while (true) {
                ws();
                if (i >= s.length() || s.charAt(i) != '"') throw error("expected a member name");
                String k = string();
                ws();
                if (i >= s.length() || s.charAt(i++) != ':') throw error("expected ':'");
                m.put(k, value());
                ws();
                if (i >= s.length()) throw error("unexpected end");
                char c = s.charAt(i++);
                if (c == '}') return m;
                if (c != ',') throw error("expected ',' or '}'");
            }
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == ']') { i++; return l; }
            while (true) {
                l.add(value());
                ws();
                if (i >= s.length()) throw error("unexpected end");
                char c = s.charAt(i++);
                if (c == ']') return l;
                if (c != ',') throw error("expected ',' or ']'");
            }
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++;
            while (true) {
                if (i >= s.length()) throw error("unterminated string");
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c < 0x20) throw error("control character in string");
                if (c != '\\') { b.append(c); continue; }
                if (i >= s.length()) throw error("unterminated escape");
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        if (i + 4 > s.length()) throw error("bad \\u escape");
                        try {
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        } catch (NumberFormatException x) {
                            throw error("bad \\u escape");
                        }
                        i += 4;
                    }
                    default -> throw error("bad escape");
                }
            }
        }

        private BigDecimal number() {
            int start = i;
            if (i < s.length() && s.charAt(i) == '-') i++;
            while (i < s.length() && "0123456789.eE+-".indexOf(s.charAt(i)) >= 0) i++;
            String n = s.substring(start, i);
            if (!n.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) throw error("bad value");
            return new BigDecimal(n);
        }
    }
}
