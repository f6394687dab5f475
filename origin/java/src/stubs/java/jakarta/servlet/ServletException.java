package jakarta.servlet;

/** Stand-in for the servlet API's class of the same name (see src/stubs/README.md). */
public class ServletException extends Exception {
    private static final long serialVersionUID = 1L;

    public ServletException(String message) {
        super(message);
    }
}
