package org.xlir.opensearch.ingest;

import org.opensearch.cluster.metadata.IndexAbstraction;
import org.opensearch.cluster.metadata.IndexMetadata;
import org.opensearch.cluster.metadata.MappingMetadata;
import org.opensearch.cluster.service.ClusterService;
import org.xlir.core.IndexStamp;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@code _meta.xlir} stamp of the index a document is about to be written to, from the local
 * cluster state, parsed once per index mapping version.
 */
final class IndexStampLookup {

    private record Cached(long mappingVersion, Map<String, Object> stamp) {}

    private final ClusterService clusterService;
    private final Map<String, Cached> cache = new ConcurrentHashMap<>();

    IndexStampLookup(ClusterService clusterService) {
        this.clusterService = clusterService;
    }

    /** The stamp, or null when the index does not exist yet or carries none. */
    Map<String, Object> stamp(String indexOrAlias) {
        if (clusterService == null || indexOrAlias == null) {
            return null;
        }
        IndexAbstraction abstraction = clusterService.state().metadata().getIndicesLookup().get(indexOrAlias);
        IndexMetadata metadata = abstraction == null ? null : abstraction.getWriteIndex();
        if (metadata == null) {
            return null;
        }
        Cached cached = cache.get(metadata.getIndexUUID());
        if (cached != null && cached.mappingVersion() == metadata.getMappingVersion()) {
            return cached.stamp();
        }
        MappingMetadata mapping = metadata.mapping();
        Map<String, Object> stamp = mapping == null ? null : IndexStamp.fromMapping(mapping.sourceAsMap());
        if (cache.size() > 10_000) {
            cache.clear();
        }
        cache.put(metadata.getIndexUUID(), new Cached(metadata.getMappingVersion(), stamp));
        return stamp;
    }
}
