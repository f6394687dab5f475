package jakarta.servlet;

/** Stand-in: the members WxIdentityServletFilter uses, with the real signatures. */
public interface ServletRequest {
    void setAttribute(String name, Object o);

    Object getAttribute(String name);
}
