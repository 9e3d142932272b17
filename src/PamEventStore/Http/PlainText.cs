namespace PamEventStore.Http;

/// <summary>
/// Text a caller names things with (a resource, an account, a reason, who it is), stored as sent and
/// shown to auditors: any script, but no control character. PostgreSQL stores no NUL in JSON, so one
/// would fail the whole write, and a line break or an escape sequence splits or rewrites the log lines
/// and terminals the text is shown on.
/// </summary>
public static class PlainText
{
    /// <summary>
    /// Whether <paramref name="value"/> holds a C0 or C1 control character, DEL included (as
    /// <see cref="char.IsControl(char)"/>), or the line and paragraph separators U+2028 and U+2029.
    /// </summary>
    public static bool HasControlCharacter(string value) =>
        value.AsSpan().IndexOfAnyInRange('\u0000', '\u001f') >= 0
        || value.AsSpan().IndexOfAnyInRange('\u007f', '\u009f') >= 0
        || value.AsSpan().IndexOfAnyInRange('\u2028', '\u2029') >= 0;
}
