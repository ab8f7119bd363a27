package org.xlir.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Long texts cut into passages of at most {@code max_tokens} model tokens, each with its
 * character offsets: the same algorithm as the Python client's {@code xlir_plugin/chunking.py}
 * (its docstring is the spec; {@code tests/data/chunking_golden.json} holds spans both sides are
 * tested against), so both paths index the same passages. Offsets are Unicode code points, as
 * Python's {@code str} indexes them; a non-BMP character is one position, not two.
 */
public final class Chunking {

    public static final int VERSION = 1;
    /** Characters that end a sentence (a copy of the Python side's {@code TERMINALS}). */
    public static final String TERMINALS = ".!?;\u3002\uff01\uff1f\uff1b\u061f\u0964\u06d4\u2026";

    private Chunking() {}

    /** A passage's (or a token's) {@code [start, end)} in code points. */
    public record Span(int start, int end) {}

    /** The processor's {@code chunking} option, checked; the index stamp records {@link #stamp()}. */
    public record Settings(int maxTokens, int overlapTokens) {
        public Settings {
            if (maxTokens < 1) {
                throw new IllegalArgumentException("max_tokens must be >= 1, got " + maxTokens);
            }
            if (overlapTokens < 0 || (overlapTokens > 0 && overlapTokens >= maxTokens / 2)) {
                throw new IllegalArgumentException(
                    "overlap_tokens must be in [0, max_tokens / 2) = [0, " + maxTokens / 2 + "), got " + overlapTokens
                );
            }
        }

        /** What {@code _meta.xlir.chunking} holds for these settings. */
        public Map<String, Object> stamp() {
            Map<String, Object> stamp = new LinkedHashMap<>();
            stamp.put("max_tokens", maxTokens);
            stamp.put("overlap_tokens", overlapTokens);
            stamp.put("version", VERSION);
            return stamp;
        }
    }

    /** Python's {@code str.isspace}: Unicode White_Space plus the separators U+001C..U+001F. */
    static boolean isSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0d)
            || (cp >= 0x1c && cp <= 0x20)
            || cp == 0x85
            || cp == 0xa0
            || cp == 0x1680
            || (cp >= 0x2000 && cp <= 0x200a)
            || cp == 0x2028
            || cp == 0x2029
            || cp == 0x202f
            || cp == 0x205f
            || cp == 0x3000;
    }

    /** Token spans with their leading whitespace trimmed; spans left empty are dropped (step 1). */
    public static List<Span> tokenSpans(int[] text, List<Span> offsets) {
        List<Span> spans = new ArrayList<>(offsets.size());
        for (Span o : offsets) {
            int start = o.start();
            while (start < o.end() && isSpace(text[start])) {
                start++;
            }
            if (start < o.end()) {
                spans.add(new Span(start, o.end()));
            }
        }
        return spans;
    }

    /** 2: a sentence ends after token t; 1: a word does; 0: neither (step 2). */
    static int boundaryLevel(int[] text, List<Span> spans, int t) {
        int end = spans.get(t).end();
        int next = spans.get(t + 1).start();
        if (end > 0 && TERMINALS.indexOf(text[end - 1]) >= 0) {
            return 2;
        }
        boolean space = false;
        for (int c = end; c < next; c++) {
            if (text[c] == '\n') {
                return 2;
            }
            space |= isSpace(text[c]);
        }
        return space ? 1 : 0;
    }

    /** The passages' spans for the token {@code spans} of {@code text} (step 3). */
    public static List<Span> chunkSpans(int[] text, List<Span> spans, Settings settings) {
        int n = spans.size();
        int size = settings.maxTokens();
        List<Span> out = new ArrayList<>();
        int i = 0;
        while (i < n) {
            int j = Math.min(i + size, n);
            int cut = j;
            if (j < n) {
                int lo = i + Math.max(1, size / 2);
                int word = -1;
                int sentence = -1;
                for (int t = j - 2; t >= lo - 1; t--) {
                    int level = boundaryLevel(text, spans, t);
                    if (level == 2) {
                        sentence = t;
                        break;
                    }
                    if (level == 1 && word < 0) {
                        word = t;
                    }
                }
                int t = sentence >= 0 ? sentence : word;
                if (t >= 0) {
                    cut = t + 1;
                }
            }
            out.add(new Span(spans.get(i).start(), spans.get(cut - 1).end()));
            if (cut == n) {
                break;
            }
            i = Math.max(cut - settings.overlapTokens(), i + 1);
        }
        return out;
    }

    /** {@code text}'s substring for a code point span. */
    public static String slice(String text, Span span) {
        int from = text.offsetByCodePoints(0, span.start());
        return text.substring(from, text.offsetByCodePoints(from, span.end() - span.start()));
    }
}
