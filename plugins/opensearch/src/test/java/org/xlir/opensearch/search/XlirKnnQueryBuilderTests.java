package org.xlir.opensearch.search;

import org.junit.jupiter.api.Test;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.common.xcontent.XContentFactory;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.ParseField;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.bytes.BytesReference;
import org.opensearch.core.common.io.stream.NamedWriteableAwareStreamInput;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.ToXContent;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.TermQueryBuilder;
import org.xlir.core.InputType;

import java.io.IOException;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Parsing, wire format and the rewrite target of {@code xlir_knn}; no node (the rewrite's embedding is tested on a real node). */
class XlirKnnQueryBuilderTests {

    /** The queries these tests use: ours and a term query as the filter (the node registers k-NN's {@code knn} too). */
    private static final NamedXContentRegistry XCONTENT = new NamedXContentRegistry(
        List.of(
            new NamedXContentRegistry.Entry(QueryBuilder.class, new ParseField(XlirKnnQueryBuilder.NAME), p -> XlirKnnQueryBuilder.fromXContent(p, () -> null)),
            new NamedXContentRegistry.Entry(QueryBuilder.class, new ParseField(TermQueryBuilder.NAME), TermQueryBuilder::fromXContent)
        )
    );
    private static final NamedWriteableRegistry WRITEABLES = new NamedWriteableRegistry(
        List.of(
            new NamedWriteableRegistry.Entry(QueryBuilder.class, XlirKnnQueryBuilder.NAME, in -> new XlirKnnQueryBuilder(in, () -> null)),
            new NamedWriteableRegistry.Entry(QueryBuilder.class, TermQueryBuilder.NAME, TermQueryBuilder::new)
        )
    );

    private static QueryBuilder parse(String json) throws IOException {
        try (XContentParser parser = JsonXContent.jsonXContent.createParser(XCONTENT, DeprecationHandler.THROW_UNSUPPORTED_OPERATION, json)) {
            parser.nextToken();
            return AbstractQueryBuilder.parseInnerQueryBuilder(parser);
        }
    }

    private static String json(XContentBuilder builder) {
        return BytesReference.bytes(builder).utf8ToString();
    }

    private static final String QUERY = """
        {"xlir_knn": {"field": "embedding", "text": "Wer hat ...?", "model": "default", "k": 10,
                      "filter": {"term": {"lang": "de"}}, "boost": 2.0, "_name": "q"}}""";

    @Test
    void parsesTheDocumentedForm() throws IOException {
        XlirKnnQueryBuilder q = assertInstanceOf(XlirKnnQueryBuilder.class, parse(QUERY));
        assertEquals("embedding", q.field());
        assertEquals("Wer hat ...?", q.text());
        assertEquals("default", q.model());
        assertEquals(10, q.k());
        assertEquals(new TermQueryBuilder("lang", "de"), q.filter());
        assertEquals(InputType.QUERY, q.inputType());
        assertEquals(2.0f, q.boost());
        assertEquals("q", q.queryName());
    }

    /** {@code q} survives its JSON form and the transport's wire form unchanged. */
    private static void assertRoundTrips(QueryBuilder q) throws IOException {
        XContentBuilder out = XContentFactory.jsonBuilder();
        q.toXContent(out, ToXContent.EMPTY_PARAMS);
        assertEquals(q, parse(json(out)));
        try (BytesStreamOutput stream = new BytesStreamOutput()) {
            stream.writeNamedWriteable(q);
            try (NamedWriteableAwareStreamInput in = new NamedWriteableAwareStreamInput(stream.bytes().streamInput(), WRITEABLES)) {
                assertEquals(q, in.readNamedWriteable(QueryBuilder.class));
            }
        }
    }

    @Test
    void xContentAndWireRoundTrip() throws IOException {
        QueryBuilder q = parse(QUERY);
        assertRoundTrips(q);
    }

    @Test
    void refusesIncompleteOrUnknownOptions() {
        String base = "{\"xlir_knn\": {\"field\": \"embedding\", \"text\": \"t\", \"model\": \"default\", \"k\": 3%s}}";
        assertTrue(assertThrows(ParsingException.class, () -> parse("{\"xlir_knn\": {\"field\": \"e\", \"text\": \"t\", \"model\": \"default\"}}"))
            .getMessage()
            .contains("needs [k]"));
        assertTrue(assertThrows(ParsingException.class, () -> parse("{\"xlir_knn\": {\"field\": \"e\", \"text\": \"t\", \"k\": 3}}"))
            .getMessage()
            .contains("needs [model]"));
        assertTrue(assertThrows(ParsingException.class, () -> parse(String.format(base, ", \"num_candidates\": 5")))
            .getMessage()
            .contains("does not support [num_candidates]"));
        assertTrue(assertThrows(ParsingException.class, () -> parse(String.format(base, ", \"input_type\": \"doc\"")))
            .getMessage()
            .contains("input_type"));
        assertThrows(ParsingException.class, () -> parse("{\"xlir_knn\": {\"field\": \"e\", \"text\": \" \", \"model\": \"default\", \"k\": 3}}"));
        assertThrows(ParsingException.class, () -> parse("{\"xlir_knn\": {\"field\": \"e\", \"text\": \"t\", \"model\": \"../x\", \"k\": 3}}"));
        assertThrows(ParsingException.class, () -> parse("{\"xlir_knn\": {\"field\": \"e\", \"text\": \"t\", \"model\": \"default\", \"k\": 0}}"));
    }

    @Test
    void rewritesIntoTheKnnPluginsQuery() throws IOException {
        XlirKnnQueryBuilder q = (XlirKnnQueryBuilder) parse(QUERY);
        assertEquals(
            "{\"knn\":{\"embedding\":{\"vector\":[0.5,-0.25],\"k\":10,\"filter\":{\"term\":{\"lang\":{\"value\":\"de\",\"boost\":1.0}}},"
                + "\"boost\":2.0,\"_name\":\"q\"}}}",
            json(q.knnJson(new float[] { 0.5f, -0.25f }))
        );
    }

    @Test
    void expandNestedDocsReachesTheKnnQueryAndRoundTrips() throws IOException {
        String nested = """
            {"xlir_knn": {"field": "passages.embedding", "text": "t", "model": "default", "k": 5,
                          "expand_nested_docs": true}}""";
        XlirKnnQueryBuilder q = (XlirKnnQueryBuilder) parse(nested);
        assertTrue(json(q.knnJson(new float[] { 1f })).contains("\"expand_nested_docs\":true"));
        assertRoundTrips(q);
        assertTrue(json(((XlirKnnQueryBuilder) parse(QUERY)).knnJson(new float[] { 1f })).contains("expand") == false);
    }

    @Test
    void aNodeWithoutKnnGetsAClearError() throws IOException {
        XlirKnnQueryBuilder q = (XlirKnnQueryBuilder) parse(QUERY);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> q.knnQuery(new float[] { 1f }, XCONTENT));
        assertTrue(e.getMessage().contains("install opensearch-knn"), e.getMessage());
    }
}
