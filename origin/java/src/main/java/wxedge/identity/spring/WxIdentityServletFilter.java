package wxedge.identity.spring;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.util.Collections;
import java.util.List;
import org.springframework.web.filter.OncePerRequestFilter;
import wxedge.identity.WxIdentity;

/**
 * Spring (Boot 3 / Spring 6, jakarta.servlet) wiring of {@link WxIdentity.Filter}: verifies
 * X-WX-Identity before your controllers run and puts the identity in the request attribute
 * {@value WxIdentity.Filter#ATTRIBUTE}; a missing or invalid assertion is answered 401, an
 * unreachable JWKS 503.
 *
 * <pre>{@code
 * @Bean
 * FilterRegistrationBean<WxIdentityServletFilter> wxIdentity(
 *         @Value("${wx.jwks-url}") String jwksUrl, @Value("${wx.audience}") String audience) {
 *     var r = new FilterRegistrationBean<>(new WxIdentityServletFilter(jwksUrl, audience));
 *     r.addUrlPatterns("/wx/*");
 *     return r;
 * }
 * }</pre>
 *
 * <p>The jar needs neither Spring nor the servlet API to load its other classes: they are
 * {@code provided} dependencies (pom.xml), used only by this class.
 */
public class WxIdentityServletFilter extends OncePerRequestFilter {
    private final WxIdentity.Filter filter;

    public WxIdentityServletFilter(String jwksUrl, String audience) {
        this(new WxIdentity.Verifier(URI.create(jwksUrl), audience), false);
    }

    /** A verifier of your own (e.g. {@code .withAppid(...)}); {@code optional} lets requests without the header through. */
    public WxIdentityServletFilter(WxIdentity.Verifier verifier, boolean optional) {
        this.filter = new WxIdentity.Filter(verifier, optional);
    }

    @Override
    protected void doFilterInternal(HttpServletRequest req, HttpServletResponse res, FilterChain chain)
            throws ServletException, IOException {
        boolean pass = filter.filter(new WxIdentity.HttpExchange() {
            @Override
            public List<String> requestHeaders(String name) {
                return Collections.list(req.getHeaders(name));
            }

            @Override
            public void setAttribute(String name, Object value) {
                req.setAttribute(name, value);
            }

            @Override
            public void respond(int status, String type, String body) throws IOException {
                res.setStatus(status);
                res.setContentType(type);
                res.getWriter().write(body);
            }
        });
        if (pass) {
            chain.doFilter(req, res); // else the 401/503 has been sent
        }
    }
}
