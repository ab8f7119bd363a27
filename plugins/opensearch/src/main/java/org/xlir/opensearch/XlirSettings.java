package org.xlir.opensearch;

import org.opensearch.common.settings.Setting.Property;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.unit.TimeValue;
import org.xlir.core.XlirDefaults.IntSpec;
import org.xlir.core.XlirDefaults;

import java.util.List;

/**
 * The plugin's node settings (opensearch.yml) as OpenSearch {@link Setting}s; names, defaults and
 * bounds come from core's {@link XlirDefaults}, the same as the Elasticsearch plugin's. The thread
 * pools' own settings are OpenSearch's: {@code thread_pool.xlir_inference.size} / {@code .queue_size}
 * and {@code thread_pool.xlir_search.size} / {@code .queue_size}.
 */
public final class XlirSettings {

    private XlirSettings() {}

    public static final Setting<Integer> INTRA_OP_THREADS = of(XlirDefaults.INTRA_OP_THREADS);
    public static final Setting<Integer> RUN_BATCH_SIZE = of(XlirDefaults.RUN_BATCH_SIZE);
    public static final Setting<Integer> RUN_MAX_TOKENS = of(XlirDefaults.RUN_MAX_TOKENS);
    public static final Setting<Integer> INGEST_BATCH_SIZE = of(XlirDefaults.INGEST_BATCH_SIZE);
    public static final Setting<TimeValue> INGEST_BATCH_WAIT = Setting.timeSetting(
        XlirDefaults.INGEST_BATCH_WAIT.key(),
        TimeValue.timeValueMillis(XlirDefaults.INGEST_BATCH_WAIT.defMillis()),
        TimeValue.timeValueMillis(XlirDefaults.INGEST_BATCH_WAIT.minMillis()),
        TimeValue.timeValueMillis(XlirDefaults.INGEST_BATCH_WAIT.maxMillis()),
        Property.NodeScope
    );
    public static final Setting<Integer> INGEST_MAX_QUEUED = of(XlirDefaults.INGEST_MAX_QUEUED);
    public static final Setting<Integer> REST_MAX_TEXTS = of(XlirDefaults.REST_MAX_TEXTS);

    private static Setting<Integer> of(IntSpec spec) {
        return Setting.intSetting(spec.key(), spec.def(), spec.min(), spec.max(), Property.NodeScope);
    }

    public static List<Setting<?>> all() {
        return List.of(INTRA_OP_THREADS, RUN_BATCH_SIZE, RUN_MAX_TOKENS, INGEST_BATCH_SIZE, INGEST_BATCH_WAIT, INGEST_MAX_QUEUED, REST_MAX_TEXTS);
    }
}
