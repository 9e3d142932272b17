using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace PamEventStore.Recording;

/// <summary>
/// The fields of one recorded event as read off the wire, type-checked but not yet interpreted:
/// which shape the event has is decided from <see cref="EventType"/> afterwards.
/// </summary>
internal sealed class RecordedEventFields
{
    private readonly HashSet<string> _present = new(StringComparer.Ordinal);

    public string? Timestamp { get; private set; }
    public string? Input { get; private set; }
    public string? Output { get; private set; }
    public string? EventType { get; private set; }
    public string? ChannelType { get; private set; }
    public byte[]? Data { get; private set; }
    public double? ElapsedTime { get; private set; }
    public string? RequestId { get; private set; }
    public SortedDictionary<string, string[]>? Headers { get; private set; }
    public string? Method { get; private set; }
    public string? Url { get; private set; }
    public string? Status { get; private set; }
    public byte[]? Body { get; private set; }

    public bool Has(string field) => _present.Contains(field);

    public bool OnlyHas(string[] allowed, [NotNullWhen(false)] out string? extra)
    {
        extra = _present.FirstOrDefault(f => Array.IndexOf(allowed, f) < 0);
        return extra is null;
    }

    /// <summary>Reads the object the reader is positioned on (StartObject) up to its EndObject.</summary>
    public static bool TryRead(
        ref Utf8JsonReader reader,
        int index,
        [NotNullWhen(true)] out RecordedEventFields? fields,
        [NotNullWhen(false)] out RecordingError? error)
    {
        var read = new RecordedEventFields();
        fields = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            reader.Read();
            if (!read._present.Add(name))
            {
                error = new RecordingError(index, name, $"event {index}: field '{name}' appears twice");
                return false;
            }

            bool ok;
            try
            {
                ok = ReadValue(ref reader, name, read);
            }
            catch (InvalidOperationException)
            {
                // A string that is not valid UTF-8, or an unpaired surrogate escape.
                error = new RecordingError(index, name, $"event {index}: '{name}' is not valid UTF-8 text");
                return false;
            }

            if (!ok)
            {
                error = new RecordingError(index, name, $"event {index}: {Expectation(name)}");
                return false;
            }
        }

        fields = read;
        error = null;
        return true;
    }

    private static bool ReadValue(ref Utf8JsonReader reader, string name, RecordedEventFields read) => name switch
    {
        "timestamp" => TryString(ref reader, v => read.Timestamp = v),
        "input" => TryString(ref reader, v => read.Input = v),
        "output" => TryString(ref reader, v => read.Output = v),
        "eventType" => TryString(ref reader, v => read.EventType = v),
        "channelType" => TryString(ref reader, v => read.ChannelType = v),
        "requestId" => TryString(ref reader, v => read.RequestId = v),
        "method" => TryString(ref reader, v => read.Method = v),
        "url" => TryString(ref reader, v => read.Url = v),
        "status" => TryString(ref reader, v => read.Status = v),
        // Go marshals a nil []byte as null: an event with no payload bytes.
        "data" => reader.TokenType == JsonTokenType.Null || TryBase64(ref reader, v => read.Data = v),
        "body" => TryBase64(ref reader, v => read.Body = v),
        "elapsedTime" => reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var seconds) && Set(() => read.ElapsedTime = seconds),
        "headers" => TryHeaders(ref reader, read),
        _ => SkipUnknown(ref reader),
    };

    private static string Expectation(string field) => field switch
    {
        "data" or "body" => $"'{field}' must be a standard base64 string",
        "elapsedTime" => "'elapsedTime' must be a number of seconds",
        "headers" => "'headers' must be null or an object mapping each header name to an array of strings",
        "timestamp" or "input" or "output" or "eventType" or "channelType" or "requestId" or "method" or "url" or "status"
            => $"'{field}' must be a string",
        _ => $"field '{field}' is not part of any recorded event",
    };

    private static bool Set(Action assign)
    {
        assign();
        return true;
    }

    private static bool TryString(ref Utf8JsonReader reader, Action<string> assign)
    {
        if (reader.TokenType != JsonTokenType.String) return false;
        assign(reader.GetString()!);
        return true;
    }

    private static bool TryBase64(ref Utf8JsonReader reader, Action<byte[]> assign)
    {
        if (reader.TokenType != JsonTokenType.String) return false;

        // Base64 never needs JSON escapes, but an encoder may still write '/' as "\/".
        var raw = reader.ValueIsEscaped ? System.Text.Encoding.UTF8.GetBytes(reader.GetString()!) : reader.ValueSpan.ToArray();
        if (!RecordingParser.TryDecodeBase64(raw, out var bytes)) return false;
        assign(bytes);
        return true;
    }

    private static bool TryHeaders(ref Utf8JsonReader reader, RecordedEventFields read)
    {
        if (reader.TokenType == JsonTokenType.Null) return true;
        if (reader.TokenType != JsonTokenType.StartObject) return false;

        // Go's http.Header is a map and marshals with sorted keys: sorting here makes the canonical form match it.
        var headers = new SortedDictionary<string, string[]>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            if (name.Length == 0 || headers.ContainsKey(name)) return false;
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray) return false;

            var values = new List<string>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (reader.TokenType != JsonTokenType.String) return false;
                values.Add(reader.GetString()!);
            }

            headers[name] = values.ToArray();
        }

        read.Headers = headers;
        return true;
    }

    private static bool SkipUnknown(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return false;
    }
}
