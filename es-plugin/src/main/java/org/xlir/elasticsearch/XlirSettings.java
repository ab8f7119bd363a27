package org.xlir.elasticsearch;

import org.elasticsearch.common.settings.Setting;
import org.elasticsearch.common.settings.Setting.Property;
import org.elasticsearch.core.TimeValue;

import java.util.List;

/**
 * The plugin's node settings (elasticsearch.yml), declared in one place. The thread pools' own
 * settings are Elasticsearch's: {@code thread_pool.xlir_inference.size} / {@code .queue_size}
 * (ingest) and {@code thread_pool.xlir_search.size} / {@code .queue_size} (queries, REST).
 */
public final class XlirSettings {

    private XlirSettings() {}

    /** The plugin's fixed thread pool for ingest batches. */
    public static final String THREAD_POOL_NAME = "xlir_inference";

    /** The plugin's fixed thread pool for query vectors and REST requests (not behind ingest). */
    public static final String SEARCH_THREAD_POOL_NAME = "xlir_search";

    /** onnxruntime intra-op threads per encode; 0 = cores / pool size (at least 1, at most 4). */
    public static final Setting<Integer> INTRA_OP_THREADS = Setting.intSetting(
        "xlir.inference.intra_op_threads",
        0,
        0,
        64,
        Property.NodeScope
    );

    /** Texts per ONNX run (length-sorted, padded per run), like the Python encoder's batch_size. */
    public static final Setting<Integer> RUN_BATCH_SIZE = Setting.intSetting("xlir.inference.batch_size", 32, 1, 1024, Property.NodeScope);

    /**
     * Tokens (padding included) per ONNX run, like the Python encoder's max_batch_tokens: long texts run
     * in smaller batches, so activations stay small, and an int8 model (activations quantized per run)
     * gives the same vectors as the Python encoder only when both cut batches the same way.
     */
    public static final Setting<Integer> RUN_MAX_TOKENS = Setting.intSetting("xlir.inference.max_batch_tokens", 1024, 1, 1 << 20, Property.NodeScope);

    /** The ingest micro-batcher encodes at most this many documents' texts at once... */
    public static final Setting<Integer> INGEST_BATCH_SIZE = Setting.intSetting("xlir.ingest.batch_size", 256, 1, 4096, Property.NodeScope);

    /** ...once no document has come for this long (at most 20x this after the first one). */
    public static final Setting<TimeValue> INGEST_BATCH_WAIT = Setting.timeSetting(
        "xlir.ingest.batch_wait",
        TimeValue.timeValueMillis(5),
        TimeValue.ZERO,
        TimeValue.timeValueSeconds(1),
        Property.NodeScope
    );

    /** Texts waiting in the ingest batcher beyond which documents are rejected (HTTP 429). */
    public static final Setting<Integer> INGEST_MAX_QUEUED = Setting.intSetting(
        "xlir.ingest.max_queued",
        20000,
        1,
        1_000_000,
        Property.NodeScope
    );

    /** Most texts one {@code POST _xlir/embed} may carry. */
    public static final Setting<Integer> REST_MAX_TEXTS = Setting.intSetting("xlir.rest.max_texts", 1024, 1, 100_000, Property.NodeScope);

    public static List<Setting<?>> all() {
        return List.of(INTRA_OP_THREADS, RUN_BATCH_SIZE, RUN_MAX_TOKENS, INGEST_BATCH_SIZE, INGEST_BATCH_WAIT, INGEST_MAX_QUEUED, REST_MAX_TEXTS);
    }

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
