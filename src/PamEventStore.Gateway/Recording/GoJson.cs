using System.Globalization;
using System.Text.Json;

namespace PamEventStore.Gateway.Recording;

/// <summary>
/// Recorded events written the way the Infisical gateway's Go structs marshal them: the same field
/// order and omissions, RFC 3339 timestamps with nanoseconds and trailing zeros trimmed, HTML-safe
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
            json.WriteString("input", input);
            json.WriteString("output", output);
        });

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
