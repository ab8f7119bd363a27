package org.xlir.core;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * What the native libraries need inside a search engine node. DJL finds its native library through the
 * thread's context class loader and would otherwise cache it under the user's home and call the
 * network; onnxruntime extracts its libraries to {@code java.io.tmpdir} (the node's temp
 * directory, which plugins may write).
 */
public final class NativeRuntime {

    private NativeRuntime() {}

    /** Once, at node start: keep DJL offline and its native cache in the node's temp directory. */
    public static void configure(Path tmpDir) {
        setIfAbsent("ai.djl.offline", "true");
        setIfAbsent("ENGINE_CACHE_DIR", tmpDir.resolve("xlir-djl").toString());
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /** Runs {@code body} with the plugin's class loader as the context class loader. */
    public static <T> T withPluginClassLoader(Callable<T> body) throws Exception {
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(NativeRuntime.class.getClassLoader());
        try {
            return body.call();
        } finally {
            thread.setContextClassLoader(previous);
        }
    }
}
