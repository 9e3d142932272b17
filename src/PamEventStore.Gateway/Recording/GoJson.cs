using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PamEventStore.Gateway.Recording;

/// <summary>
/// Recorded events written the way the Infisical gateway's Go structs marshal them: the same field
/// order and omissions, RFC 3339 timestamps with nanoseconds and trailing zeros trimmed, Go's HTML-safe
/// string escaping, base64 payloads.
/// </summary>
public static class GoJson
{
    /// <summary>SSH/RDP: <c>{timestamp, eventType, channelType?, data, elapsedTime}</c>.</summary>
    public static byte[] SessionEvent(DateTimeOffset timestamp, string eventType, string? channelType, byte[] data, double elapsedSeconds) =>
        Write(json =>
        {
            json.WriteString("timestamp", Timestamp(timestamp));
            json.WriteString("eventType", eventType);
            if (channelType is not null) json.WriteString("channelType", channelType);
            json.WriteBase64String("data", data);
            json.WriteNumber("elapsedTime", elapsedSeconds);
        });

    /// <summary>Databases: <c>{timestamp, input, output}</c>.</summary>
    public static byte[] CommandLog(DateTimeOffset timestamp, string input, string output) =>
        Write(json =>
        {
            json.WriteString("timestamp", Timestamp(timestamp));
            json.WritePropertyName("input");
            json.WriteRawValue(String(input), skipInputValidation: true);
            json.WritePropertyName("output");
            json.WriteRawValue(String(output), skipInputValidation: true);
        });

    /// <summary>
    /// A string as Go's encoding/json writes it: only <c>"</c>, <c>\</c>, control characters (short forms
    /// for \b \f \n \r \t, else \u00xx), <c>&lt; &gt; &amp;</c>, U+2028 and U+2029 escaped, in lowercase hex;
    /// everything else as UTF-8, and what is no text (half a surrogate pair) as U+FFFD.
    /// </summary>
    public static string String(string value)
    {
        var text = new StringBuilder(value.Length + 2).Append('"');
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case < ' ' or '<' or '>' or '&' or '\u2028' or '\u2029': text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                case >= '\ud800' and <= '\udbff' when i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]): text.Append(c).Append(value[++i]); break;
                case >= '\ud800' and <= '\udfff': text.Append("\\ufffd"); break;
                default: text.Append(c); break;
            }
        }

        return text.Append('"').ToString();
    }

    /// <summary>Go's time.Time.MarshalJSON: RFC 3339 with up to nine fractional digits, zeros trimmed.</summary>
    public static string Timestamp(DateTimeOffset timestamp)
    {
        var text = timestamp.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff", CultureInfo.InvariantCulture).TrimEnd('0').TrimEnd('.');
        return text + (timestamp.Offset == TimeSpan.Zero ? "Z" : timestamp.ToString("zzz", CultureInfo.InvariantCulture));
    }

    private static byte[] Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            body(json);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
