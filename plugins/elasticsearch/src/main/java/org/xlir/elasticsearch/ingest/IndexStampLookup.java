package org.xlir.elasticsearch.ingest;

import org.elasticsearch.cluster.metadata.IndexAbstraction;
import org.elasticsearch.cluster.metadata.IndexMetadata;
import org.elasticsearch.cluster.metadata.MappingMetadata;
import org.elasticsearch.cluster.metadata.ProjectId;
import org.elasticsearch.cluster.metadata.ProjectMetadata;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.index.Index;
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
    Map<String, Object> stamp(ProjectId projectId, String indexOrAlias) {
        if (clusterService == null || indexOrAlias == null) {
            return null;
        }
        ProjectMetadata project = clusterService.state().metadata().getProject(projectId);
        IndexAbstraction abstraction = project.getIndicesLookup().get(indexOrAlias);
        Index write = abstraction == null ? null : abstraction.getWriteIndex();
        IndexMetadata metadata = write == null ? null : project.index(write);
        if (metadata == null) {
            return null;
        }
        Cached cached = cache.get(write.getUUID());
        if (cached != null && cached.mappingVersion() == metadata.getMappingVersion()) {
            return cached.stamp();
        }
        MappingMetadata mapping = metadata.mapping();
        Map<String, Object> stamp = mapping == null ? null : IndexStamp.fromMapping(mapping.sourceAsMap());
        if (cache.size() > 10_000) {
            cache.clear();
        }
        cache.put(write.getUUID(), new Cached(metadata.getMappingVersion(), stamp));
        return stamp;
    }
}
