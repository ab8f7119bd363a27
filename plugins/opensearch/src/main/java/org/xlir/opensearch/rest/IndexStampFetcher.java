package org.xlir.opensearch.rest;

import org.opensearch.action.admin.indices.mapping.get.GetMappingsRequest;
import org.opensearch.cluster.metadata.MappingMetadata;
import org.opensearch.core.action.ActionListener;
import org.opensearch.transport.client.node.NodeClient;
import org.xlir.core.IndexStamp;

import java.util.Map;

/** Reads an index's {@code _meta.xlir} model stamp through the client, as the calling user. */
final class IndexStampFetcher {

    private IndexStampFetcher() {}

    static void fetch(NodeClient client, String index, ActionListener<Map<String, Object>> listener) {
        GetMappingsRequest request = new GetMappingsRequest().indices(index);
        client.admin().indices().getMappings(request, ActionListener.wrap(response -> {
            Map<String, MappingMetadata> mappings = response.mappings();
            if (mappings.size() != 1) {
                throw new IllegalArgumentException("[" + index + "] names " + mappings.size() + " indexes; give exactly one index");
            }
            MappingMetadata mapping = mappings.values().iterator().next();
            listener.onResponse(IndexStamp.required(index, mapping == null ? null : mapping.sourceAsMap()));
        }, listener::onFailure));
    }
}
