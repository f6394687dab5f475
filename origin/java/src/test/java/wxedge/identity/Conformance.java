package wxedge.identity;

import java.math.BigDecimal;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;

/**
 * Runs this verifier over a vectors file with the clock at the file's "now" and
 * prints one JSON line per case: {"name", "valid", "sub"?, "error"?}.
 * origin/conformance/check compares.
 */
public final class Conformance {
    private Conformance() {}

    /** A verifier over a vectors file's JWKS, audience, issuer and clock. */
    static WxIdentity.Verifier verifierFor(Map<?, ?> v, String jwksJson) {
        Clock clock = Clock.fixed(Instant.ofEpochSecond(((BigDecimal) v.get("now")).longValueExact()), ZoneOffset.UTC);
        return new WxIdentity.Verifier((String) v.get("audience"), (String) v.get("issuer"), Duration.ofSeconds(30),
                clock, new WxIdentity.JwksCache(() -> jwksJson, clock));
    }

    /** JSON text of a value the reader produced (maps, lists, strings, numbers, booleans, null). */
    static String write(Object o) {
        if (o instanceof Map<?, ?> m) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (b.length() > 1) b.append(',');
                b.append(WxIdentity.Json.quote((String) e.getKey())).append(':').append(write(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (o instanceof List<?> l) {
            StringBuilder b = new StringBuilder("[");
            for (Object e : l) b.append(b.length() > 1 ? "," : "").append(write(e));
            return b.append(']').toString();
        }
        if (o instanceof String s) return WxIdentity.Json.quote(s);
        return String.valueOf(o); // BigDecimal, Boolean, null
    }

    public static void main(String[] args) throws Exception {
        String file = Files.readString(Path.of(args[0]));
        Map<?, ?> v = (Map<?, ?>) WxIdentity.Json.parse(file);
        WxIdentity.Verifier verifier = verifierFor(v, write(v.get("jwks")));
        for (Object o : (List<?>) v.get("cases")) {
            Map<?, ?> c = (Map<?, ?>) o;
            String name = WxIdentity.Json.quote((String) c.get("name"));
            // A case with "appid": a verifier that requires that appid (same cache).
            WxIdentity.Verifier ver = verifier.withAppid((String) c.get("appid"));
            try {
                WxIdentity.Identity id = ver.verify((String) c.get("token"));
                System.out.println("{\"name\":" + name + ",\"valid\":true,\"sub\":" + WxIdentity.Json.quote(id.openid()) + "}");
            } catch (WxIdentity.IdentityException e) {
                System.out.println("{\"name\":" + name + ",\"valid\":false,\"error\":" + WxIdentity.Json.quote(e.getMessage()) + "}");
            }
        }
        Object urls = v.get("jwks_urls");
        for (Object o : urls instanceof List<?> l ? l : List.of()) {
            Map<?, ?> c = (Map<?, ?>) o;
            String name = WxIdentity.Json.quote((String) c.get("name"));
            try {
                new WxIdentity.Verifier(URI.create((String) c.get("url")), (String) v.get("audience"));
                System.out.println("{\"name\":" + name + ",\"valid\":true}");
            } catch (IllegalArgumentException e) {
                System.out.println("{\"name\":" + name + ",\"valid\":false,\"error\":" + WxIdentity.Json.quote(String.valueOf(e.getMessage())) + "}");
            }
        }
    }
}
