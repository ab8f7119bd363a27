package org.xlir.core;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@code xlir_embed} behaviour both engines share: option checks, per-document errors, the
 * truncation flag and the index stamp check. The embedding itself is a fixed vector here (the
 * model is exercised by the in-engine tests on real nodes).
 */
class FieldEmbedderTests {

    private static final ModelManifest MANIFEST = ModelManifest.fromMap(Map.of("source_model", "m", "dim", 2, "sha256", "ab"));

    /** A document as a flat map, with the index it goes to. */
    private record Doc(Map<String, Object> fields, String index) implements FieldEmbedder.Document {
        @Override
        public Object get(String field) {
            return fields.get(field);
        }

        @Override
        public void set(String field, Object value) {
            fields.put(field, value);
        }
    }

    /**
     * Texts longer than 5 characters come back truncated, as a model with a tiny max_length would;
     * a passage's vector is {@code [length, 1]}; tokens are the text's words (ASCII here).
     */
    private static final FieldEmbedder.BatchedEmbed FIXED = new FieldEmbedder.BatchedEmbed() {
        @Override
        public void embedBatched(String model, String text, InputType type, Listener<Embedding> listener) {
            float[] vector = text.length() > 12 ? new float[] { text.length(), 1f } : new float[] { 0.6f, 0.8f };
            listener.onResponse(new Embedding(vector, text.length() > 5, MANIFEST));
        }

        @Override
        public List<Chunking.Span> passages(String model, String text, Chunking.Settings settings) {
            List<Chunking.Span> words = new ArrayList<>();
            Matcher m = Pattern.compile("\\S+").matcher(text);
            while (m.find()) {
                words.add(new Chunking.Span(m.start(), m.end()));
            }
            return Chunking.chunkSpans(text.codePoints().toArray(), words, settings);
        }
    };

    private static Exception run(FieldEmbedder.Options options, Doc doc, Map<String, Object> stamp) {
        AtomicReference<Exception> result = new AtomicReference<>(new IllegalStateException("not completed"));
        new FieldEmbedder(options, FIXED, index -> stamp).execute(doc, result::set);
        return result.get();
    }

    private static FieldEmbedder.Options options(boolean ignoreMissing) {
        return FieldEmbedder.Options.of("default", Map.of("text", "embedding"), "passage", ignoreMissing, true);
    }

    @Test
    void checksOptionsNamingTheProperty() {
        assertEquals("model", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("../x", Map.of("a", "b"), "passage", false, true)).property());
        assertEquals("field_map", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of(), "passage", false, true)).property());
        assertEquals("field_map", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of("a", 3), "passage", false, true)).property());
        assertEquals("input_type", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of("a", "b"), "doc", false, true)).property());
    }

    @Test
    void writesTheVectorAndFlagsTruncatedTexts() {
        Doc shortText = new Doc(new HashMap<>(Map.of("text", "hi")), "docs");
        assertNull(run(options(false), shortText, null));
        assertEquals(List.of(0.6f, 0.8f), shortText.fields().get("embedding"));
        assertFalse(shortText.fields().containsKey("embedding_truncated"));
        Doc longText = new Doc(new HashMap<>(Map.of("text", "a long text")), "docs");
        assertNull(run(options(false), longText, null));
        assertEquals(true, longText.fields().get("embedding_truncated"));
    }

    @Test
    void badDocumentsFailAloneWithTheFieldAndModelNamed() {
        Exception missing = run(options(false), new Doc(new HashMap<>(), "docs"), null);
        assertTrue(missing.getMessage().contains("field [text] is missing or null (model [default])"), missing.getMessage());
        Exception blank = run(options(false), new Doc(new HashMap<>(Map.of("text", " ")), "docs"), null);
        assertTrue(blank.getMessage().contains("field [text] is empty"), blank.getMessage());
        Exception number = run(options(false), new Doc(new HashMap<>(Map.of("text", 42)), "docs"), null);
        assertTrue(number.getMessage().contains("is of type [Integer], not a string"), number.getMessage());
        Doc skipped = new Doc(new HashMap<>(), "docs");
        assertNull(run(options(true), skipped, null));
        assertTrue(skipped.fields().isEmpty());
    }

    @Test
    void refusesAnIndexStampedWithAnotherModel() {
        Map<String, Object> other = Map.of("model", "other@int8", "dims", 2, "sha256", "cd");
        Exception e = run(options(false), new Doc(new HashMap<>(Map.of("text", "hi")), "docs"), other);
        assertTrue(e.getMessage().contains("index [docs] was built with model [other@int8]"), e.getMessage());
        Map<String, Object> same = Map.of("model", "m@none", "dims", 2, "sha256", "ab");
        assertNull(run(options(false), new Doc(new HashMap<>(Map.of("text", "hi")), "docs"), same));
    }

    private static FieldEmbedder.Options chunked(int maxTokens, int overlap) {
        return FieldEmbedder.Options.of(
            "default",
            Map.of("text", "passages"),
            "passage",
            false,
            true,
            Map.of("max_tokens", maxTokens, "overlap_tokens", overlap)
        );
    }

    @Test
    @SuppressWarnings("unchecked")
    void chunkingWritesOnePassageObjectPerPassageWithOffsets() {
        String text = "One two three. Four five six seven. Eight nine";
        Doc doc = new Doc(new HashMap<>(Map.of("text", text)), "docs");
        Map<String, Object> stamp = Map.of("dims", 2, "sha256", "ab", "chunking", Map.of("max_tokens", 4, "overlap_tokens", 0, "version", 1));
        assertNull(run(chunked(4, 0), doc, stamp));
        List<Map<String, Object>> passages = (List<Map<String, Object>>) doc.fields().get("passages");
        List<String> texts = passages.stream().map(p -> text.substring((int) p.get("start"), (int) p.get("end"))).toList();
        assertEquals(List.of("One two three.", "Four five six", "seven. Eight nine"), texts);
        assertEquals(List.of((float) "One two three.".length(), 1f), passages.get(0).get("embedding"));
        assertEquals(true, doc.fields().get("passages_truncated"));
        assertFalse(doc.fields().containsKey("embedding"));
    }

    @Test
    void chunkingOptionsAreCheckedAndAnIndexOfOtherChunkingIsRefused() {
        Map<String, Object> bad = Map.of("max_tokens", 8, "overlap_tokens", 4);
        FieldEmbedder.ConfigException e = assertThrows(
            FieldEmbedder.ConfigException.class,
            () -> FieldEmbedder.Options.of("m", Map.of("a", "b"), "passage", false, true, bad)
        );
        assertEquals("chunking", e.property());
        assertTrue(e.getMessage().contains("overlap_tokens must be in [0, max_tokens / 2)"), e.getMessage());
        Map<String, Object> unknown = Map.of("max_tokens", 8, "size", 4);
        assertEquals("chunking", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of("a", "b"), "passage", false, true, unknown)).property());
        Doc doc = new Doc(new HashMap<>(Map.of("text", "a b c")), "docs");
        Map<String, Object> plain = Map.of("dims", 2, "sha256", "ab");
        Exception refused = run(chunked(4, 0), doc, plain);
        assertTrue(refused.getMessage().contains("index [docs] holds one vector per document (not chunked); this write asks for passages of 4 tokens"), refused.getMessage());
        Map<String, Object> other = Map.of("dims", 2, "sha256", "ab", "chunking", Map.of("max_tokens", 8, "overlap_tokens", 0, "version", 1));
        assertTrue(run(chunked(4, 0), doc, other).getMessage().contains("holds passages of 8 tokens"));
        assertTrue(run(options(false), doc, other).getMessage().contains("this write asks for one vector per document"));
    }

    @Test
    void theChunkingSpecPrefersSentencesThenWordsThenCutsHard() {
        // tokens are single characters; "." ends a sentence, " " separates words
        String text = "ab. cdefgh ij";
        int[] cps = text.codePoints().toArray();
        List<Chunking.Span> chars = new ArrayList<>();
        for (int i = 0; i < cps.length; i++) {
            if (cps[i] != ' ') {
                chars.add(new Chunking.Span(i, i + 1));
            }
        }
        List<Chunking.Span> spans = Chunking.chunkSpans(cps, chars, new Chunking.Settings(6, 0));
        assertEquals(List.of(new Chunking.Span(0, 3), new Chunking.Span(4, 10), new Chunking.Span(11, 13)), spans);
        List<Chunking.Span> overlapped = Chunking.chunkSpans(cps, chars, new Chunking.Settings(6, 2));
        assertEquals(new Chunking.Span(0, 3), overlapped.get(0));
        assertEquals(new Chunking.Span(1, 8), overlapped.get(1)); // starts 2 tokens back: "b."
        String emoji = "\uD83D\uDE00 x";
        assertEquals("x", Chunking.slice(emoji, new Chunking.Span(2, 3)));
        assertTrue(Chunking.tokenSpans(emoji.codePoints().toArray(), List.of(new Chunking.Span(1, 2))).isEmpty());
    }
}
