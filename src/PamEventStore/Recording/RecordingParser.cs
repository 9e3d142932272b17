using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace PamEventStore.Recording;

/// <summary>Why a recording was refused: which event (by index) and which field.</summary>
public sealed record RecordingError(int? Index, string? Field, string Message);

/// <summary>
/// Strict reader of the recorded-event wire schema (the JSON the Infisical gateway marshals from its
/// Go structs) that writes the canonical form in the same pass. Anything it does not understand is
/// refused rather than dropped, so nothing a gateway sent is silently lost.
/// </summary>
public static class RecordingParser
{
    private static readonly JsonReaderOptions ReaderOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 16,
    };

    // The recorded content is only ever served inside application/json documents, never HTML, so the
    // HTML-safe escaping of the default encoder would only bloat terminal output full of '<' and '&'.
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    private static readonly string[] SessionEventTypes = ["input", "output", "resize", "error", "rdp"];
    private static readonly string[] ChannelTypes = ["terminal", "exec", "sftp", "rdp"];

    /// <summary>Parses a JSON array of recorded events; an empty array is refused.</summary>
    public static bool TryParseBatch(
        ReadOnlySpan<byte> utf8Json,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error) =>
        TryParse(utf8Json, legacyEnvelope: false, out batch, out error);

    /// <summary>
    /// Parses the legacy bulk upload body, <c>{"logs": [events]}</c>. An empty array is accepted: a
    /// session in which nothing happened still ends with this upload.
    /// </summary>
    public static bool TryParseLegacyLogs(
        ReadOnlySpan<byte> utf8Json,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error) =>
        TryParse(utf8Json, legacyEnvelope: true, out batch, out error);

    private static bool TryParse(
        ReadOnlySpan<byte> utf8Json,
        bool legacyEnvelope,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        var reader = new Utf8JsonReader(utf8Json, ReaderOptions);
        try
        {
            if (legacyEnvelope)
            {
                if (!TryReadLegacyEnvelope(ref reader, utf8Json.Length, out batch, out error)) return false;
            }
            else if (!TryReadBatchArray(ref reader, utf8Json.Length, out batch, out error))
            {
                return false;
            }

            // Reading on refuses (throws on) anything but whitespace after the value.
            reader.Read();
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            batch = null;
            error = new RecordingError(null, null, $"malformed JSON or invalid UTF-8 near byte {(e as JsonException)?.BytePositionInLine ?? reader.BytesConsumed}");
            return false;
        }
    }

    private static bool TryReadBatchArray(
        ref Utf8JsonReader reader,
        int expectedBytes,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        batch = null;
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            error = new RecordingError(null, null, "the body must be a JSON array of recorded events");
            return false;
        }

        return TryReadEvents(ref reader, allowEmpty: false, expectedBytes, out batch, out error);
    }

    private static bool TryReadLegacyEnvelope(
        ref Utf8JsonReader reader,
        int expectedBytes,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        batch = null;
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            error = new RecordingError(null, null, "the body must be a JSON object {\"logs\": [...]}");
            return false;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("logs"u8) || batch is not null)
            {
                batch = null;
                error = new RecordingError(null, reader.GetString(), "only a single 'logs' field is allowed");
                return false;
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                error = new RecordingError(null, "logs", "'logs' must be an array of recorded events");
                return false;
            }

            if (!TryReadEvents(ref reader, allowEmpty: true, expectedBytes, out batch, out error)) return false;
        }

        error = batch is null ? new RecordingError(null, "logs", "'logs' is required") : null;
        return batch is not null;
    }

    /// <summary>Reads events until the end of the array the reader is positioned on.</summary>
    private static bool TryReadEvents(
        ref Utf8JsonReader reader,
        bool allowEmpty,
        int expectedBytes,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        batch = null;
        var output = new ArrayBufferWriter<byte>(expectedBytes + 64);
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        var fields = new RecordedEventFields();
        var ends = new List<int>();
        var timestamps = new List<DateTimeOffset>();
        RecordedEventKind? batchKind = null;

        writer.WriteStartArray();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var index = ends.Count;
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                error = new RecordingError(index, null, $"event {index} must be a JSON object");
                return false;
            }

            if (!fields.TryRead(ref reader, index, out error)) return false;
            if (!TryWriteCanonical(writer, fields, index, out var kind, out var timestamp, out error)) return false;

            // A gateway records one resource per session, so one batch holds a single event shape.
            if (batchKind is { } expected && expected != kind)
            {
                error = new RecordingError(index, null, $"event {index} is a {Describe(kind)} but event 0 is a {Describe(expected)}");
                return false;
            }

            batchKind = kind;
            writer.Flush();
            ends.Add(output.WrittenCount);
            timestamps.Add(timestamp);
        }

        if (ends.Count == 0 && !allowEmpty)
        {
            error = new RecordingError(null, null, "the batch holds no events");
            return false;
        }

        writer.WriteEndArray();
        writer.Flush();
        batch = new RecordingBatch(batchKind ?? RecordedEventKind.CommandLog, output.WrittenSpan.ToArray(), ends.ToArray(), timestamps.ToArray());
        error = null;
        return true;
    }

    private static bool TryWriteCanonical(
        Utf8JsonWriter writer,
        RecordedEventFields fields,
        int index,
        out RecordedEventKind kind,
        out DateTimeOffset timestamp,
        [NotNullWhen(false)] out RecordingError? error)
    {
        timestamp = default;
        kind = fields.EventType switch
        {
            null => RecordedEventKind.CommandLog,
            "request" or "response" => RecordedEventKind.HttpEvent,
            _ => RecordedEventKind.SessionEvent,
        };

        if (kind == RecordedEventKind.SessionEvent && Array.IndexOf(SessionEventTypes, fields.EventType) < 0)
        {
            error = new RecordingError(index, "eventType", $"event {index}: 'eventType' must be one of input, output, resize, error, rdp, request, response");
            return false;
        }

        var extra = fields.Present & ~AllowedFields(kind, fields.EventType);
        if (extra != EventField.None)
        {
            var name = RecordedEventFields.NameOf(Lowest(extra));
            error = new RecordingError(index, name, $"event {index}: field '{name}' is not part of a {Describe(kind)}{(fields.EventType is null ? "" : $" of type '{fields.EventType}'")}");
            return false;
        }

        var missing = RequiredFields(kind, fields.EventType) & ~fields.Present;
        if (missing != EventField.None)
        {
            var name = RecordedEventFields.NameOf(Lowest(missing));
            error = new RecordingError(index, name, $"event {index}: field '{name}' is required in a {Describe(kind)}");
            return false;
        }

        if (!Rfc3339.TryParse(fields.Timestamp, out timestamp))
        {
            error = new RecordingError(index, "timestamp", $"event {index}: 'timestamp' must be an RFC 3339 date-time such as 2026-04-07T12:34:56.123456789+02:00");
            return false;
        }

        writer.WriteStartObject();
        writer.WriteString("timestamp"u8, fields.Timestamp);
        switch (kind)
        {
            case RecordedEventKind.CommandLog:
                writer.WriteString("input"u8, fields.Input);
                writer.WriteString("output"u8, fields.Output);
                break;

            case RecordedEventKind.SessionEvent:
                if (fields.ChannelType is not null && Array.IndexOf(ChannelTypes, fields.ChannelType) < 0)
                {
                    error = new RecordingError(index, "channelType", $"event {index}: 'channelType' must be one of terminal, exec, sftp, rdp");
                    return false;
                }

                if (fields.ElapsedTime is not { } elapsed || !double.IsFinite(elapsed) || elapsed < 0)
                {
                    error = new RecordingError(index, "elapsedTime", $"event {index}: 'elapsedTime' must be a non-negative number of seconds");
                    return false;
                }

                writer.WriteString("eventType"u8, fields.EventType);
                if (fields.ChannelType is not null) writer.WriteString("channelType"u8, fields.ChannelType);
                writer.WriteBase64String("data"u8, fields.Data);
                // -0 and 0 are the same time: one canonical spelling, one hash.
                writer.WriteNumber("elapsedTime"u8, elapsed == 0 ? 0d : elapsed);
                break;

            case RecordedEventKind.HttpEvent:
                if (string.IsNullOrEmpty(fields.RequestId))
                {
                    error = new RecordingError(index, "requestId", $"event {index}: 'requestId' must be a non-empty string");
                    return false;
                }

                writer.WriteString("requestId"u8, fields.RequestId);
                writer.WriteString("eventType"u8, fields.EventType);
                if (fields.Headers is null)
                {
                    writer.WriteNull("headers"u8);
                }
                else
                {
                    writer.WriteStartObject("headers"u8);
                    foreach (var (name, values) in fields.Headers)
                    {
                        writer.WriteStartArray(name);
                        foreach (var value in values) writer.WriteStringValue(value);
                        writer.WriteEndArray();
                    }

                    writer.WriteEndObject();
                }

                if (fields.Method is not null) writer.WriteString("method"u8, fields.Method);
                if (fields.Url is not null) writer.WriteString("url"u8, fields.Url);
                if (fields.Status is not null) writer.WriteString("status"u8, fields.Status);
                if (fields.Has(EventField.Body)) writer.WriteBase64String("body"u8, fields.Body);
                break;
        }

        writer.WriteEndObject();
        error = null;
        return true;
    }

    private static EventField AllowedFields(RecordedEventKind kind, string? eventType) => kind switch
    {
        RecordedEventKind.CommandLog => EventField.Timestamp | EventField.Input | EventField.Output,
        RecordedEventKind.SessionEvent => EventField.Timestamp | EventField.EventType | EventField.ChannelType | EventField.Data | EventField.ElapsedTime,
        _ when eventType == "request" => HttpCommon | EventField.Method | EventField.Url,
        _ => HttpCommon | EventField.Status,
    };

    private const EventField HttpCommon = EventField.Timestamp | EventField.RequestId | EventField.EventType | EventField.Headers | EventField.Body;

    // Go's gateway omits empty method/url/status/body (omitempty) but always writes headers, possibly null.
    private static EventField RequiredFields(RecordedEventKind kind, string? eventType) => kind switch
    {
        RecordedEventKind.CommandLog => EventField.Timestamp | EventField.Input | EventField.Output,
        RecordedEventKind.SessionEvent => EventField.Timestamp | EventField.EventType | EventField.Data | EventField.ElapsedTime,
        _ when eventType == "request" => EventField.Timestamp | EventField.RequestId | EventField.EventType | EventField.Method | EventField.Url,
        _ => EventField.Timestamp | EventField.RequestId | EventField.EventType | EventField.Status,
    };

    /// <summary>The first field of a set, in declaration order: the one an error names.</summary>
    private static EventField Lowest(EventField fields) => (EventField)((int)fields & -(int)fields);

    private static string Describe(RecordedEventKind kind) => kind switch
    {
        RecordedEventKind.CommandLog => "command log",
        RecordedEventKind.SessionEvent => "session event",
        _ => "HTTP event",
    };
}
