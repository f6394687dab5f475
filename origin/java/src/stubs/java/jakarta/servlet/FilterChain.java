package jakarta.servlet;

import java.io.IOException;

/** Stand-in with the real signature. */
public interface FilterChain {
    void doFilter(ServletRequest request, ServletResponse response) throws IOException, ServletException;
}
