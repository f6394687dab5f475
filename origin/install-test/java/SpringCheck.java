import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import wxedge.identity.WxIdentity;
import wxedge.identity.spring.WxIdentityServletFilter;

/**
 * The jar's Spring filter, run against the servlet/Spring stand-ins (no Spring here): a
 * request with the worker's assertion reaches the chain with the identity attribute set; one
 * without is answered 401.
 */
public final class SpringCheck {
    static final class Req implements HttpServletRequest {
        final List<String> identity;
        final Map<String, Object> attributes = new HashMap<>();

        Req(List<String> identity) {
            this.identity = identity;
        }

        @Override
        public Enumeration<String> getHeaders(String name) {
            return Collections.enumeration(name.equalsIgnoreCase("X-WX-Identity") ? identity : List.of());
        }

        @Override
        public void setAttribute(String name, Object o) {
            attributes.put(name, o);
        }

        @Override
        public Object getAttribute(String name) {
            return attributes.get(name);
        }
    }

    static final class Res implements HttpServletResponse {
        int status = 200;
        String type;
        final StringWriter body = new StringWriter();

        @Override
        public void setStatus(int sc) {
            status = sc;
        }

        @Override
        public void setContentType(String t) {
            type = t;
        }

        @Override
        public PrintWriter getWriter() {
            return new PrintWriter(body, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Map<?, ?> v = (Map<?, ?>) WxIdentity.Json.parse(Files.readString(Path.of(args[0])));
        Clock clock = Clock.fixed(Instant.ofEpochSecond(((BigDecimal) v.get("now")).longValueExact()), ZoneOffset.UTC);
        String jwks = args[1];
        Map<?, ?> worker = null;
        for (Object o : (List<?>) v.get("cases")) {
            if ("worker assertion, as captured from the worker".equals(((Map<?, ?>) o).get("name"))) worker = (Map<?, ?>) o;
        }
        WxIdentityServletFilter filter = new WxIdentityServletFilter(new WxIdentity.Verifier((String) v.get("audience"),
                "wx-edge", Duration.ofSeconds(30), clock, new WxIdentity.JwksCache(() -> jwks, clock)), false);
        boolean[] reached = {false};
        FilterChain chain = (ServletRequest rq, ServletResponse rs) -> reached[0] = true;

        Req ok = new Req(List.of((String) worker.get("token")));
        filter.doFilter(ok, new Res(), chain);
        WxIdentity.Identity id = (WxIdentity.Identity) ok.getAttribute(WxIdentity.Filter.ATTRIBUTE);
        if (!reached[0] || id == null || !id.openid().equals(worker.get("sub"))) {
            System.err.println("java package: the Spring filter did not pass the worker's assertion");
            System.exit(1);
        }
        reached[0] = false;
        Res refused = new Res();
        filter.doFilter(new Req(List.of()), refused, chain);
        if (reached[0] || refused.status != 401 || !refused.body.toString().contains("missing_identity")) {
            System.err.println("java package: the Spring filter let a bare request through: " + refused.status);
            System.exit(1);
        }
        System.out.println("java package: the Spring filter (against the servlet/Spring stand-ins) passes the worker's assertion, refuses a bare request");
    }
}
