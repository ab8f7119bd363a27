package org.xlir.opensearch.rest;

import org.opensearch.action.admin.indices.mapping.get.GetMappingsRequest;
import org.opensearch.cluster.metadata.MappingMetadata;
import org.opensearch.core.action.ActionListener;
import org.opensearch.transport.client.node.NodeClient;
import org.xlir.core.IndexStamp;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Reads an index's {@code _meta.xlir} model stamp through the client, as the calling user. */
final class IndexStampFetcher {

    private IndexStampFetcher() {}

    static IndexStamp.Fetcher of(NodeClient client) {
        return (index, listener) -> client.admin()
            .indices()
            .getMappings(new GetMappingsRequest().indices(index), ActionListener.wrap(response -> {
                List<Map<String, Object>> sources = new ArrayList<>();
                for (MappingMetadata mapping : response.mappings().values()) {
                    sources.add(mapping == null ? null : mapping.sourceAsMap());
                }
                listener.onResponse(IndexStamp.requiredOfOne(index, sources));
            }, listener::onFailure));
    }
}
