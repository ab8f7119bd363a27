package org.xlir.core;

import java.util.Locale;

/** Which prefix from the model's settings goes in front of a text (the Python encoder's `kind`). */
public enum InputType {
    QUERY,
    PASSAGE,
    /** no prefix */
    RAW;

    public static InputType parse(String value) {
        if (value == null) {
            throw new IllegalArgumentException("input_type must be one of [query, passage, raw], got null");
        }
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "query" -> QUERY;
            case "passage" -> PASSAGE;
            case "raw" -> RAW;
            default -> throw new IllegalArgumentException("input_type must be one of [query, passage, raw], got [" + value + "]");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
