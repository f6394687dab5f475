package org.springframework.web.filter;

import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;

/**
 * Stand-in for Spring's OncePerRequestFilter: the same abstract method and the same final
 * doFilter entry point (without the once-per-request bookkeeping).
 */
public abstract class OncePerRequestFilter {
    public final void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws ServletException, IOException {
        HttpServletRequest req = (HttpServletRequest) request;
        if (shouldNotFilter(req)) {
            chain.doFilter(request, response);
            return;
        }
        doFilterInternal(req, (HttpServletResponse) response, chain);
    }

    protected boolean shouldNotFilter(HttpServletRequest request) throws ServletException {
        return false;
    }

    protected abstract void doFilterInternal(
            HttpServletRequest request, HttpServletResponse response, FilterChain filterChain)
            throws ServletException, IOException;
}
