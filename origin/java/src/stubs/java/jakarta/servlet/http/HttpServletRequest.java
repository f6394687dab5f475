package jakarta.servlet.http;

import jakarta.servlet.ServletRequest;
import java.util.Enumeration;

/** Stand-in: the members WxIdentityServletFilter uses, with the real signatures. */
public interface HttpServletRequest extends ServletRequest {
    Enumeration<String> getHeaders(String name);
}
