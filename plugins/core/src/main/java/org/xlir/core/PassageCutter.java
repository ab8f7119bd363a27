package org.xlir.core;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A model's tokenizer without special tokens or truncation, for {@link Chunking}: the whole
 * text's token offsets, in code points (the tokenizers library's char offsets, as Python's
 * {@code Encoding.offsets} gives them), cut into passages.
 */
final class PassageCutter implements Closeable {

    private final HuggingFaceTokenizer tokenizer;

    PassageCutter(Path tokenizerJson) throws IOException {
        this.tokenizer = HuggingFaceTokenizer.newInstance(
            tokenizerJson,
            Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false")
        );
    }

    /** The passages of {@code text}; none when it has no token (empty, whitespace). */
    List<Chunking.Span> passages(String text, Chunking.Settings settings) {
        int[] codePoints = text.codePoints().toArray();
        Encoding encoding = tokenizer.encode(text);
        List<Chunking.Span> offsets = new ArrayList<>();
        for (CharSpan span : encoding.getCharTokenSpans()) {
            if (span != null) {
                offsets.add(new Chunking.Span(span.getStart(), span.getEnd()));
            }
        }
        return Chunking.chunkSpans(codePoints, Chunking.tokenSpans(codePoints, offsets), settings);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
