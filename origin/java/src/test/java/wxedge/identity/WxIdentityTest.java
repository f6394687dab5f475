package wxedge.identity;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.math.BigDecimal;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The Java verifier: the conformance vectors, the JWKS cache's refetch floor
 * with a fake fetcher and clock, and the filter. No JUnit on this machine:
 * a main that runs each test and exits non-zero on a failure.
 */
public final class WxIdentityTest {
    private WxIdentityTest() {}

    static final Path VECTORS = Path.of(System.getProperty("vectors", "../conformance/vectors.json"));
    static Map<?, ?> v;
    static List<?> cases;
    static long now;

    static Map<?, ?> c(String name) {
        for (Object o : cases) if (name.equals(((Map<?, ?>) o).get("name"))) return (Map<?, ?>) o;
        throw new AssertionError("no case " + name);
    }

    static String token(String name) {
        return (String) c(name).get("token");
    }

    static final String WORKER = "worker assertion, as captured from the worker";
    static final String ROTATED = "signed by the rotated-in key (second key in the JWKS)";
    static final String TAMPERED = "tampered payload: another openid, original signature";

    static Map<?, ?> part(String token, int i) {
        return (Map<?, ?>) WxIdentity.Json.parse(new String(Base64.getUrlDecoder().decode(token.split("\\.")[i]), StandardCharsets.UTF_8));
    }

    static String kid(String token) {
        return (String) part(token, 0).get("kid");
    }

    static String jwksWith(String... kids) {
        List<Object> keep = new ArrayList<>();
        for (Object k : (List<?>) ((Map<?, ?>) v.get("jwks")).get("keys")) {
            for (String kid : kids) if (kid.equals(((Map<?, ?>) k).get("kid"))) keep.add(k);
        }
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("keys", keep);
        return Conformance.write(doc);
    }

    /** A clock the test moves. */
    static final class MovableClock extends Clock {
        long millis;

        MovableClock(long seconds) {
            millis = seconds * 1000;
        }

        void add(long seconds) {
            millis += seconds * 1000;
        }

        @Override
        public long millis() {
            return millis;
        }

        @Override
        public Instant instant() {
            return Instant.ofEpochMilli(millis);
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            return this;
        }
    }

    /** A fake JWKS endpoint: counts fetches, serves doc, or fails. */
    static final class FakeFetcher implements WxIdentity.JwksFetcher {
        volatile String doc;
        volatile boolean fail;
        volatile long delayMillis;
        final AtomicInteger calls = new AtomicInteger();

        FakeFetcher(String doc) {
            this.doc = doc;
        }

        @Override
        public String fetch() throws Exception {
            calls.incrementAndGet();
            if (delayMillis > 0) Thread.sleep(delayMillis);
            if (fail) throw new IOException("worker unreachable");
            return doc;
        }
    }

    static WxIdentity.Verifier verifierAt(long seconds, WxIdentity.JwksFetcher f, Duration leeway) {
        Clock clock = Clock.fixed(Instant.ofEpochSecond(seconds), ZoneOffset.UTC);
        return new WxIdentity.Verifier((String) v.get("audience"), (String) v.get("issuer"), leeway, clock,
                new WxIdentity.JwksCache(f, clock));
    }

    static WxIdentity.Verifier verifierAt(long seconds) {
        String jwks = Conformance.write(v.get("jwks"));
        return verifierAt(seconds, () -> jwks, Duration.ofSeconds(30));
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static boolean rejects(WxIdentity.Verifier ver, String tok) {
        try {
            ver.verify(tok);
            return false;
        } catch (WxIdentity.IdentityException e) {
            return true;
        }
    }

    // ------------------------------------------------------------------ tests

    static void conformanceVectors() throws Exception {
        WxIdentity.Verifier ver = verifierAt(now);
        for (Object o : cases) {
            Map<?, ?> c = (Map<?, ?>) o;
            String name = (String) c.get("name");
            // A case with "appid": the verifier requires it.
            WxIdentity.Verifier pinned = ver.withAppid((String) c.get("appid"));
            if (Boolean.TRUE.equals(c.get("valid"))) {
                check(pinned.verify((String) c.get("token")).openid().equals(c.get("sub")), name);
            } else {
                check(rejects(pinned, (String) c.get("token")), name + ": accepted");
            }
        }
    }

    static void jwksUrls() {
        List<?> urls = (List<?>) v.get("jwks_urls");
        check(urls != null && !urls.isEmpty(), "no JWKS URL cases");
        for (Object o : urls) {
            Map<?, ?> c = (Map<?, ?>) o;
            String error = null;
            try {
                new WxIdentity.Verifier(URI.create((String) c.get("url")), (String) v.get("audience"));
            } catch (IllegalArgumentException e) {
                error = e.getMessage();
            }
            boolean valid = Boolean.TRUE.equals(c.get("valid"));
            check(valid == (error == null), c.get("name") + ": " + error);
            check(error == null || error.contains("https") || error.contains("absolute"), "unclear: " + error);
        }
    }

    static void lifetimeCapAndAppidPin() throws Exception {
        String tooLong = token("lifetime 121 s: longer than the worker's 2 minutes");
        WxIdentity.Verifier ver = verifierAt(now);
        try {
            ver.verify(tooLong);
            throw new AssertionError("a 121 s lifetime accepted");
        } catch (WxIdentity.IdentityException e) {
            check(e.getMessage().contains("lifetime"), e.getMessage());
        }
        ver.withMaxLifetime(Duration.ofMinutes(5)).verify(tooLong); // an origin may allow more, explicitly
        String other = token("appid pinned: another mini-program's assertion");
        ver.verify(other); // not pinned
        check(ver.withAppid("wx2222222222222222").verify(other).appid().equals("wx2222222222222222"), "own appid");
        try {
            ver.withAppid("wx2222222222222222").verify(token(WORKER));
            throw new AssertionError("another appid accepted");
        } catch (WxIdentity.IdentityException e) {
            check(e.getMessage().contains("appid"), e.getMessage());
        }
    }

    static void slowFetchDoesNotStallCachedKids() throws Exception {
        String workerKid = kid(token(WORKER)), rotatedKid = kid(token(ROTATED));
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        AtomicInteger calls = new AtomicInteger();
        WxIdentity.JwksFetcher fetcher = () -> {
            if (calls.incrementAndGet() == 1) return jwksWith(workerKid);
            started.countDown();
            release.await(10, java.util.concurrent.TimeUnit.SECONDS); // a slow JWKS server
            return jwksWith(workerKid, rotatedKid);
        };
        MovableClock clock = new MovableClock(now);
        WxIdentity.Verifier ver = new WxIdentity.Verifier((String) v.get("audience"), WxIdentity.ISSUER,
                Duration.ofSeconds(30), clock, new WxIdentity.JwksCache(fetcher, clock));
        ver.verify(token(WORKER)); // the first fetch, fast
        clock.add(30);
        Map<String, Object> results = new java.util.concurrent.ConcurrentHashMap<>();
        java.util.function.BiFunction<String, String, Thread> run = (name, tok) -> new Thread(() -> {
            try {
                results.put(name, ver.verify(tok).openid());
            } catch (WxIdentity.IdentityException e) {
                results.put(name, e);
            }
        });
        Thread rotated = run.apply("rotated", token(ROTATED));
        Thread second = run.apply("second", token(ROTATED));
        try {
            rotated.start(); // an unknown kid: the refetch starts, and hangs
            check(started.await(5, java.util.concurrent.TimeUnit.SECONDS), "the refetch never started");
            Thread cached = run.apply("cached", token(WORKER));
            cached.start();
            cached.join(2000);
            check(!cached.isAlive(), "a verification with a cached kid waited for the JWKS fetch");
            check(c(WORKER).get("sub").equals(results.get("cached")), "cached: " + results.get("cached"));
            second.start(); // another unknown kid waits for that same fetch
            second.join(100);
            check(second.isAlive(), "an unknown kid did not wait for the fetch in flight");
        } finally {
            release.countDown();
        }
        rotated.join(5000);
        second.join(5000);
        check(c(ROTATED).get("sub").equals(results.get("rotated")), "rotated: " + results.get("rotated"));
        check(c(ROTATED).get("sub").equals(results.get("second")), "second: " + results.get("second"));
        check(calls.get() == 2, "want 2 fetches, got " + calls.get());
    }

    static void typedIdentity() throws Exception {
        String tok = token(WORKER);
        Map<?, ?> claims = part(tok, 1);
        WxIdentity.Identity id = verifierAt(now).verify(tok);
        WxIdentity.Identity want = new WxIdentity.Identity((String) claims.get("sub"), (String) claims.get("unionid"),
                (String) claims.get("appid"), "13800138000", "86", (String) claims.get("jti"),
                ((BigDecimal) claims.get("exp")).doubleValue());
        check(id.equals(want), id + " != " + want);
    }

    static void clockDecidesExpiry() throws Exception {
        String tok = token(WORKER);
        long exp = ((BigDecimal) part(tok, 1).get("exp")).longValueExact();
        verifierAt(exp + 29).verify(tok);
        check(rejects(verifierAt(exp + 30), tok), "accepted at exp + leeway");
        String jwks = Conformance.write(v.get("jwks"));
        check(rejects(verifierAt(exp + 10, () -> jwks, Duration.ofSeconds(5)), tok), "accepted past a 5 s leeway");
    }

    static void cacheRefetchFloorAndRotation() throws Exception {
        String workerKid = kid(token(WORKER)), rotatedKid = kid(token(ROTATED));
        MovableClock clock = new MovableClock(1000);
        FakeFetcher f = new FakeFetcher(jwksWith(workerKid));
        WxIdentity.JwksCache cache = new WxIdentity.JwksCache(f, clock);
        check(cache.get(workerKid) != null && cache.get(workerKid) != null, "worker key");
        check(f.calls.get() == 1, "one fetch");
        clock.add(10); // forged kids within the floor: no fetch
        check(cache.get("forged-1") == null && cache.get("forged-2") == null, "forged kid found");
        check(f.calls.get() == 1, "refetched within the floor");
        clock.add(20); // 30 s on: one refetch, then the floor again
        cache.get("forged-3");
        cache.get("forged-4");
        check(f.calls.get() == 2, "want 2 fetches, got " + f.calls.get());
        f.doc = jwksWith(rotatedKid, workerKid); // a rotation
        clock.add(29);
        check(cache.get(rotatedKid) == null, "refetched within the floor");
        clock.add(1);
        check(cache.get(rotatedKid) != null && cache.get(workerKid) != null, "rotated key not picked up");
        check(f.calls.get() == 3, "want 3 fetches, got " + f.calls.get());
    }

    static void cacheMaxAgeFailuresAndRetiredKey() throws Exception {
        String workerKid = kid(token(WORKER)), rotatedKid = kid(token(ROTATED));
        MovableClock clock = new MovableClock(0);
        FakeFetcher f = new FakeFetcher(jwksWith(workerKid));
        f.fail = true;
        WxIdentity.JwksCache cache = new WxIdentity.JwksCache(f, clock, Duration.ofSeconds(30), Duration.ofSeconds(600));
        for (long t : new long[] {0, 29}) {
            clock.millis = t * 1000;
            try {
                cache.get(workerKid);
                throw new AssertionError("no error while the JWKS was never fetched");
            } catch (WxIdentity.IdentityException e) {
                check(e.code().equals("jwks_unavailable"), e.code());
            }
        }
        check(f.calls.get() == 1, "failures must respect the floor");
        f.fail = false;
        clock.millis = 30_000;
        check(cache.get(workerKid) != null, "no key after recovery");
        clock.millis = 629_000;
        cache.get(workerKid);
        check(f.calls.get() == 2, "refetched a fresh cache");
        clock.millis = 630_000;
        f.fail = true;
        check(cache.get(workerKid) != null, "a failed refresh dropped the known key");
        clock.millis = 660_000;
        f.fail = false;
        f.doc = jwksWith(rotatedKid);
        check(cache.get(workerKid) == null, "a retired key is still accepted");
        check(f.calls.get() == 4, "want 4 fetches, got " + f.calls.get());
    }

    static void concurrentCallersShareOneFetch() throws Exception {
        String workerKid = kid(token(WORKER));
        FakeFetcher f = new FakeFetcher(jwksWith(workerKid));
        f.delayMillis = 20;
        WxIdentity.JwksCache cache = new WxIdentity.JwksCache(f, new MovableClock(0));
        List<Thread> threads = new ArrayList<>();
        AtomicInteger found = new AtomicInteger();
        for (int i = 0; i < 8; i++) {
            Thread t = new Thread(() -> {
                try {
                    if (cache.get(workerKid) != null) found.incrementAndGet();
                } catch (WxIdentity.IdentityException e) {
                    // counted as not found
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join();
        check(found.get() == 8, "found " + found.get());
        check(f.calls.get() == 1, "want 1 fetch, got " + f.calls.get());
    }

    /** A fake exchange, as an HttpServletRequest/Response adapter would be. */
    static final class FakeExchange implements WxIdentity.HttpExchange {
        final Map<String, List<String>> headers = new HashMap<>();
        final Map<String, Object> attributes = new HashMap<>();
        int status;
        String body;

        FakeExchange header(String name, String value) {
            headers.computeIfAbsent(name.toLowerCase(), k -> new ArrayList<>()).add(value);
            return this;
        }

        @Override
        public List<String> requestHeaders(String name) {
            return headers.getOrDefault(name.toLowerCase(), List.of());
        }

        @Override
        public void setAttribute(String name, Object value) {
            attributes.put(name, value);
        }

        @Override
        public void respond(int status, String contentType, String body) {
            check(contentType.equals("application/json"), contentType);
            this.status = status;
            this.body = body;
        }
    }

    static void filter() throws Exception {
        WxIdentity.Filter f = new WxIdentity.Filter(verifierAt(now), false);
        FakeExchange ok = new FakeExchange().header("X-WX-Identity", token(WORKER)).header("X-WX-OpenID", "oForged");
        check(f.filter(ok), "valid refused");
        WxIdentity.Identity id = (WxIdentity.Identity) ok.attributes.get(WxIdentity.Filter.ATTRIBUTE);
        check(id.openid().equals(c(WORKER).get("sub")), "openid");

        FakeExchange none = new FakeExchange().header("X-WX-OpenID", "oForged");
        check(!f.filter(none) && none.status == 401 && none.body.contains("\"missing_identity\""), "missing: " + none.body);
        FakeExchange bad = new FakeExchange().header("x-wx-identity", token(TAMPERED));
        check(!f.filter(bad) && bad.status == 401 && bad.body.contains("\"invalid_identity\""), "tampered: " + bad.body);
        FakeExchange two = new FakeExchange().header("X-WX-Identity", token(WORKER)).header("X-WX-Identity", token(WORKER));
        check(!f.filter(two) && two.status == 401, "two assertions accepted");

        WxIdentity.Filter optional = new WxIdentity.Filter(verifierAt(now), true);
        FakeExchange anon = new FakeExchange();
        check(optional.filter(anon) && anon.attributes.containsKey(WxIdentity.Filter.ATTRIBUTE)
                && anon.attributes.get(WxIdentity.Filter.ATTRIBUTE) == null, "optional, none");
        check(!optional.filter(new FakeExchange().header("X-WX-Identity", token(TAMPERED))), "optional, tampered");

        FakeFetcher down = new FakeFetcher("{}");
        down.fail = true;
        WxIdentity.Filter unavailable = new WxIdentity.Filter(verifierAt(now, down, Duration.ofSeconds(30)), false);
        FakeExchange e = new FakeExchange().header("X-WX-Identity", token(WORKER));
        check(!unavailable.filter(e) && e.status == 503 && e.body.contains("\"jwks_unavailable\""), "JWKS down: " + e.body);
    }

    static void fetchesOverHttp() throws Exception {
        byte[] jwks = Conformance.write(v.get("jwks")).getBytes(StandardCharsets.UTF_8);
        AtomicInteger hits = new AtomicInteger();
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/.well-known/jwks.json", ex -> {
            hits.incrementAndGet();
            ex.getResponseHeaders().add("Content-Type", "application/json");
            ex.sendResponseHeaders(200, jwks.length);
            ex.getResponseBody().write(jwks);
            ex.close();
        });
        server.start();
        try {
            URI url = URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/.well-known/jwks.json");
            Clock clock = Clock.fixed(Instant.ofEpochSecond(now), ZoneOffset.UTC);
            WxIdentity.Verifier ver = new WxIdentity.Verifier((String) v.get("audience"), WxIdentity.ISSUER,
                    Duration.ofSeconds(30), clock, new WxIdentity.JwksCache(WxIdentity.httpFetcher(url), clock));
            check(ver.verify(token(WORKER)).openid().equals(c(WORKER).get("sub")), "openid");
            check(hits.get() == 1, "fetches: " + hits.get());
        } finally {
            server.stop(0);
        }
    }

    static void jsonReader() {
        check(WxIdentity.Json.parse("{\"a\":[1,-2.5e3,true,null,\"\\u00e9\\n\"]}").equals(
                Map.of("a", java.util.Arrays.asList(new BigDecimal("1"), new BigDecimal("-2.5e3"), true, null, "é\n"))), "parse");
        for (String bad : new String[] {"", "{", "{\"a\":1,}", "[1 2]", "01", "\"\\x\"", "{} {}", "nul", "1."}) {
            try {
                WxIdentity.Json.parse(bad);
                throw new AssertionError("accepted " + bad);
            } catch (IllegalArgumentException expected) {
                // refused, as it should be
            }
        }
    }

    interface Test {
        void run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        // The failed fetches below are on purpose: keep their warnings out of the output.
        java.util.logging.Logger.getLogger(WxIdentity.class.getName()).setLevel(java.util.logging.Level.OFF);
        v = (Map<?, ?>) WxIdentity.Json.parse(Files.readString(VECTORS));
        cases = (List<?>) v.get("cases");
        now = ((BigDecimal) v.get("now")).longValueExact();
        Map<String, Test> tests = new LinkedHashMap<>();
        tests.put("every conformance case gets its verdict and sub", WxIdentityTest::conformanceVectors);
        tests.put("the JWKS URL: https, or http to a loopback host only", WxIdentityTest::jwksUrls);
        tests.put("exp - iat capped at the worker's 2 minutes; appid pinned on request", WxIdentityTest::lifetimeCapAndAppidPin);
        tests.put("JWKS cache: a slow refetch stalls no cached kid", WxIdentityTest::slowFetchDoesNotStallCachedKids);
        tests.put("the worker's assertion becomes a typed identity", WxIdentityTest::typedIdentity);
        tests.put("the injected clock decides expiry", WxIdentityTest::clockDecidesExpiry);
        tests.put("JWKS cache: refetch floor and rotation", WxIdentityTest::cacheRefetchFloorAndRotation);
        tests.put("JWKS cache: max age, failures, retired key", WxIdentityTest::cacheMaxAgeFailuresAndRetiredKey);
        tests.put("JWKS cache: concurrent callers share one fetch", WxIdentityTest::concurrentCallersShareOneFetch);
        tests.put("filter: attribute, 401, optional, 503", WxIdentityTest::filter);
        tests.put("the JWKS is fetched over HTTP", WxIdentityTest::fetchesOverHttp);
        tests.put("the JSON reader is strict", WxIdentityTest::jsonReader);
        int passed = 0, failed = 0;
        for (Map.Entry<String, Test> t : tests.entrySet()) {
            try {
                t.getValue().run();
                passed++;
                System.out.println("ok - " + t.getKey());
            } catch (Exception | AssertionError e) {
                failed++;
                System.out.println("FAIL - " + t.getKey() + ": " + e);
            }
        }
        System.out.println("java: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
