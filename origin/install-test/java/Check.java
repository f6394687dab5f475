import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import wxedge.identity.WxIdentity;

/** A user's class compiled against the built jar alone: every conformance vector through it. */
public final class Check {
    public static void main(String[] args) throws Exception {
        Map<?, ?> v = (Map<?, ?>) WxIdentity.Json.parse(Files.readString(Path.of(args[0])));
        Clock clock = Clock.fixed(Instant.ofEpochSecond(((BigDecimal) v.get("now")).longValueExact()), ZoneOffset.UTC);
        String jwks = args[1];
        WxIdentity.Verifier verifier = new WxIdentity.Verifier((String) v.get("audience"), "wx-edge",
                Duration.ofSeconds(30), clock, new WxIdentity.JwksCache(() -> jwks, clock));
        int passed = 0;
        List<?> cases = (List<?>) v.get("cases");
        for (Object o : cases) {
            Map<?, ?> c = (Map<?, ?>) o;
            boolean valid;
            String sub = null;
            try {
                sub = verifier.withAppid((String) c.get("appid")).verify((String) c.get("token")).openid();
                valid = true;
            } catch (WxIdentity.IdentityException e) {
                valid = false;
            }
            if (valid != (Boolean) c.get("valid") || (valid && !sub.equals(c.get("sub")))) {
                System.err.println("java package: wrong verdict for " + c.get("name"));
                System.exit(1);
            }
            passed++;
        }
        String version = WxIdentity.class.getPackage().getImplementationVersion();
        System.out.println("java package: " + passed + "/" + cases.size()
                + " conformance cases through wx-edge-origin-" + version + ".jar");
    }
}
