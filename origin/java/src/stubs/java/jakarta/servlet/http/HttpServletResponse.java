package jakarta.servlet.http;

import jakarta.servlet.ServletResponse;

/** Stand-in: the members WxIdentityServletFilter uses, with the real signatures. */
public interface HttpServletResponse extends ServletResponse {
    void setStatus(int sc);
}
