package jakarta.servlet;

import java.io.IOException;
import java.io.PrintWriter;

/** Stand-in: the members WxIdentityServletFilter uses, with the real signatures. */
public interface ServletResponse {
    void setContentType(String type);

    PrintWriter getWriter() throws IOException;
}
