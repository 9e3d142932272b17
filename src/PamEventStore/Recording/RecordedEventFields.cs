using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Text.Json;

namespace PamEventStore.Recording;

/// <summary>Every field a recorded event may have, as bits.</summary>
[Flags]
internal enum EventField
{
    None = 0,
    Timestamp = 1 << 0,
    Input = 1 << 1,
    Output = 1 << 2,
    EventType = 1 << 3,
    ChannelType = 1 << 4,
    Data = 1 << 5,
    ElapsedTime = 1 << 6,
    RequestId = 1 << 7,
    Headers = 1 << 8,
    Method = 1 << 9,
    Url = 1 << 10,
    Status = 1 << 11,
    Body = 1 << 12,
}

/// <summary>
/// The fields of one recorded event as read off the wire, type-checked but not yet interpreted:
/// which shape the event has is decided from <see cref="EventType"/> afterwards. One instance is
/// reused for every event of a batch (a terminal batch holds one event per keystroke).
/// </summary>
internal sealed class RecordedEventFields
{
    // Decoded base64 payloads of the current event, so they are not allocated per event.
    private readonly ArrayBufferWriter<byte> _binary = new(1024);
    private (int Start, int Length) _data;
    private (int Start, int Length) _body;

    public EventField Present { get; private set; }
    public string? Timestamp { get; private set; }
    public string? Input { get; private set; }
    public string? Output { get; private set; }
    public string? EventType { get; private set; }
    public string? ChannelType { get; private set; }
    public double? ElapsedTime { get; private set; }
    public string? RequestId { get; private set; }
    public SortedDictionary<string, string[]>? Headers { get; private set; }
    public string? Method { get; private set; }
    public string? Url { get; private set; }
    public string? Status { get; private set; }

    /// <summary>Empty when the event has none, or Go marshalled a nil []byte as null.</summary>
    public ReadOnlySpan<byte> Data => _binary.WrittenSpan.Slice(_data.Start, _data.Length);

    public ReadOnlySpan<byte> Body => _binary.WrittenSpan.Slice(_body.Start, _body.Length);

    public bool Has(EventField field) => (Present & field) != 0;

    /// <summary>Reads the object the reader is positioned on (StartObject) up to its EndObject.</summary>
    public bool TryRead(ref Utf8JsonReader reader, int index, [NotNullWhen(false)] out RecordingError? error)
    {
        Reset();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = FieldNamed(ref reader);
            var name = field == EventField.None || reader.ValueIsEscaped ? reader.GetString()! : NameOf(field);
            reader.Read();
            if (field == EventField.None)
            {
                error = new RecordingError(index, name, $"event {index}: field '{name}' is not part of any recorded event");
                return false;
            }

            if (Has(field))
            {
                error = new RecordingError(index, name, $"event {index}: field '{name}' appears twice");
                return false;
            }

            Present |= field;
            bool ok;
            try
            {
                ok = ReadValue(ref reader, field);
            }
            catch (InvalidOperationException)
            {
                // A string that is not valid UTF-8, or an unpaired surrogate escape.
                error = new RecordingError(index, name, $"event {index}: '{name}' is not valid UTF-8 text");
                return false;
            }

            if (!ok)
            {
                error = new RecordingError(index, name, $"event {index}: {Expectation(field, name)}");
                return false;
            }
        }

        error = null;
        return true;
    }

    private void Reset()
    {
        Present = EventField.None;
        Timestamp = Input = Output = EventType = ChannelType = RequestId = Method = Url = Status = null;
        ElapsedTime = null;
        Headers = null;
        _binary.ResetWrittenCount();
        _data = _body = default;
    }

    private bool ReadValue(ref Utf8JsonReader reader, EventField field)
    {
        switch (field)
        {
            case EventField.ElapsedTime:
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out var seconds)) return false;
                ElapsedTime = seconds;
                return true;
            case EventField.Data:
                // Go marshals a nil []byte as null: an event with no payload bytes.
                return reader.TokenType == JsonTokenType.Null || TryDecodeBase64(ref reader, out _data);
            case EventField.Body:
                return TryDecodeBase64(ref reader, out _body);
            case EventField.Headers:
                return TryReadHeaders(ref reader);
        }

        if (reader.TokenType != JsonTokenType.String) return false;
        var value = field is EventField.EventType or EventField.ChannelType ? Known(ref reader) ?? reader.GetString()! : reader.GetString()!;
        switch (field)
        {
            case EventField.Timestamp: Timestamp = value; break;
            case EventField.Input: Input = value; break;
            case EventField.Output: Output = value; break;
            case EventField.EventType: EventType = value; break;
            case EventField.ChannelType: ChannelType = value; break;
            case EventField.RequestId: RequestId = value; break;
            case EventField.Method: Method = value; break;
            case EventField.Url: Url = value; break;
            case EventField.Status: Status = value; break;
        }

        return true;
    }

    private static readonly string[] KnownValues = ["input", "output", "terminal", "resize", "error", "rdp", "exec", "sftp", "request", "response"];
    private static readonly byte[][] KnownValuesUtf8 = KnownValues.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();

    /// <summary>The shared string for an eventType or channelType value, instead of a new one per event.</summary>
    private static string? Known(ref Utf8JsonReader reader)
    {
        for (var i = 0; i < KnownValues.Length; i++)
        {
            if (reader.ValueTextEquals(KnownValuesUtf8[i])) return KnownValues[i];
        }

        return null;
    }

    /// <summary>Each field's name on the wire, at the index of its bit: the one place they are spelled.</summary>
    private static readonly string[] FieldNames =
        ["timestamp", "input", "output", "eventType", "channelType", "data", "elapsedTime", "requestId", "headers", "method", "url", "status", "body"];

    private static readonly byte[][] FieldNamesUtf8 = FieldNames.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();

    private static EventField FieldNamed(ref Utf8JsonReader reader)
    {
        for (var bit = 0; bit < FieldNamesUtf8.Length; bit++)
        {
            if (reader.ValueTextEquals(FieldNamesUtf8[bit])) return (EventField)(1 << bit);
        }

        return EventField.None;
    }

    /// <summary>The wire name of a single field.</summary>
    public static string NameOf(EventField field) =>
        BitOperations.IsPow2((int)field) && BitOperations.Log2((uint)field) < FieldNames.Length ? FieldNames[BitOperations.Log2((uint)field)] : field.ToString();

    private static string Expectation(EventField field, string name) => field switch
    {
        EventField.Data or EventField.Body => $"'{name}' must be a standard base64 string",
        EventField.ElapsedTime => "'elapsedTime' must be a number of seconds",
        EventField.Headers => "'headers' must be null or an object mapping each header name to an array of strings",
        _ => $"'{name}' must be a string",
    };

    /// <summary>Strict standard base64: padded, no whitespace, no URL-safe alphabet.</summary>
    private bool TryDecodeBase64(ref Utf8JsonReader reader, out (int Start, int Length) decoded)
    {
        decoded = default;
        if (reader.TokenType != JsonTokenType.String) return false;

        // Base64 never needs JSON escapes, but an encoder may still write '/' as "\/".
        var raw = reader.ValueIsEscaped ? System.Text.Encoding.UTF8.GetBytes(reader.GetString()!) : reader.ValueSpan;
        if (raw.Length % 4 != 0) return false;
        foreach (var c in raw)
        {
            var valid = c is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9' or (byte)'+' or (byte)'/' or (byte)'=';
            if (!valid) return false;
        }

        var start = _binary.WrittenCount;
        var destination = _binary.GetSpan(Base64.GetMaxDecodedFromUtf8Length(raw.Length));
        if (Base64.DecodeFromUtf8(raw, destination, out var consumed, out var written) != OperationStatus.Done || consumed != raw.Length) return false;
        _binary.Advance(written);
        decoded = (start, written);
        return true;
    }

    private bool TryReadHeaders(ref Utf8JsonReader reader)
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

        Headers = headers;
        return true;
    }
}
