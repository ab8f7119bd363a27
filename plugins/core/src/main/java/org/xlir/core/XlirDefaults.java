package org.xlir.core;

import java.util.List;

/**
 * The plugin's node settings as plain values: names, defaults and bounds, declared once for both
 * engines. Each adapter turns them into its engine's {@code Setting}s ({@code XlirSettings});
 * tests/test_es_plugin_pin.py reads the run-batch defaults from this file.
 */
public final class XlirDefaults {

    private XlirDefaults() {}

    /** An integer node setting. */
    public record IntSpec(String key, int def, int min, int max) {}

    /** A time node setting, in milliseconds. */
    public record MillisSpec(String key, long defMillis, long minMillis, long maxMillis) {}

    /** The plugin's fixed thread pool for ingest batches. */
    public static final String THREAD_POOL_NAME = "xlir_inference";

    /** The plugin's fixed thread pool for query vectors and REST requests (not behind ingest). */
    public static final String SEARCH_THREAD_POOL_NAME = "xlir_search";

    /** Queue length of each of the two pools. */
    public static final int POOL_QUEUE_SIZE = 1000;

    /** onnxruntime intra-op threads per encode; 0 = cores / pool size (at least 1, at most 4). */
    public static final IntSpec INTRA_OP_THREADS = new IntSpec("xlir.inference.intra_op_threads", 0, 0, 64);

    /** Texts per ONNX run (length-sorted, padded per run), like the Python encoder's batch_size. */
    public static final IntSpec RUN_BATCH_SIZE = new IntSpec("xlir.inference.batch_size", 32, 1, 1024);

    /**
     * Tokens (padding included) per ONNX run, like the Python encoder's max_batch_tokens: long texts run
     * in smaller batches, so activations stay small, and an int8 model (activations quantized per run)
     * gives the same vectors as the Python encoder only when both cut batches the same way.
     */
    public static final IntSpec RUN_MAX_TOKENS = new IntSpec("xlir.inference.max_batch_tokens", 1024, 1, 1 << 20);

    /** The ingest micro-batcher encodes at most this many documents' texts at once... */
    public static final IntSpec INGEST_BATCH_SIZE = new IntSpec("xlir.ingest.batch_size", 256, 1, 4096);

    /** ...once no document has come for this long (at most 20x this after the first one). */
    public static final MillisSpec INGEST_BATCH_WAIT = new MillisSpec("xlir.ingest.batch_wait", 5, 0, 1000);

    /** Texts waiting in the ingest batcher beyond which documents are rejected (HTTP 429). */
    public static final IntSpec INGEST_MAX_QUEUED = new IntSpec("xlir.ingest.max_queued", 20000, 1, 1_000_000);

    /** Most texts one {@code POST _xlir/embed} may carry. */
    public static final IntSpec REST_MAX_TEXTS = new IntSpec("xlir.rest.max_texts", 1024, 1, 100_000);

    public static final List<IntSpec> INT_SETTINGS = List.of(
        INTRA_OP_THREADS,
        RUN_BATCH_SIZE,
        RUN_MAX_TOKENS,
        INGEST_BATCH_SIZE,
        INGEST_MAX_QUEUED,
        REST_MAX_TEXTS
    );

    /** Default pool size: half the allocated processors, 1 to 4. */
    public static int defaultPoolSize(int allocatedProcessors) {
        return Math.max(1, Math.min(4, allocatedProcessors / 2));
    }

    public static int intraOpThreads(int configured, int allocatedProcessors, int poolSize) {
        if (configured > 0) {
            return configured;
        }
        return Math.max(1, Math.min(4, allocatedProcessors / Math.max(1, poolSize)));
    }
}
