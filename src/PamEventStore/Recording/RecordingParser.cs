using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PamEventStore.Recording;

/// <summary>Why a recording was refused: which event (by index) and which field.</summary>
public sealed record RecordingError(int? Index, string? Field, string Message);

/// <summary>
/// Strict reader of the recorded-event wire schema (the JSON the Infisical gateway marshals from its
/// Go structs) that writes the canonical form in the same pass. Anything it does not understand is
/// refused rather than dropped, so nothing a gateway sent is silently lost.
/// </summary>
public static partial class RecordingParser
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
        [NotNullWhen(false)] out RecordingError? error)
    {
        var reader = new Utf8JsonReader(utf8Json, ReaderOptions);
        batch = null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                error = new RecordingError(null, null, "the body must be a JSON array of recorded events");
                return false;
            }

            if (!TryReadEvents(ref reader, allowEmpty: false, out batch, out error)) return false;

            // Reading on refuses (throws on) anything but whitespace after the array.
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

    /// <summary>
    /// Parses the legacy bulk upload body, <c>{"logs": [events]}</c>. An empty array is accepted: a
    /// session in which nothing happened still ends with this upload.
    /// </summary>
    public static bool TryParseLegacyLogs(
        ReadOnlySpan<byte> utf8Json,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        var reader = new Utf8JsonReader(utf8Json, ReaderOptions);
        batch = null;
        try
        {
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

                if (!TryReadEvents(ref reader, allowEmpty: true, out batch, out error)) return false;
            }

            if (batch is null)
            {
                error = new RecordingError(null, "logs", "'logs' is required");
                return false;
            }

            // Reading on refuses (throws on) anything but whitespace after the object.
            reader.Read();
            error = null;
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            batch = null;
            error = new RecordingError(null, null, $"malformed JSON or invalid UTF-8 near byte {(e as JsonException)?.BytePositionInLine ?? reader.BytesConsumed}");
            return false;
        }
    }

    /// <summary>Reads events until the end of the array the reader is positioned on.</summary>
    private static bool TryReadEvents(
        ref Utf8JsonReader reader,
        bool allowEmpty,
        [NotNullWhen(true)] out RecordingBatch? batch,
        [NotNullWhen(false)] out RecordingError? error)
    {
        batch = null;
        var output = new ArrayBufferWriter<byte>(4096);
        using var writer = new Utf8JsonWriter(output, WriterOptions);
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

            if (!RecordedEventFields.TryRead(ref reader, index, out var fields, out error)) return false;
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

        if (!fields.OnlyHas(AllowedFields(kind, fields.EventType), out var extra))
        {
            error = new RecordingError(index, extra, $"event {index}: field '{extra}' is not part of a {Describe(kind)}{(fields.EventType is null ? "" : $" of type '{fields.EventType}'")}");
            return false;
        }

        var missing = RequiredFields(kind, fields.EventType).FirstOrDefault(f => !fields.Has(f));
        if (missing is not null)
        {
            error = new RecordingError(index, missing, $"event {index}: field '{missing}' is required in a {Describe(kind)}");
            return false;
        }

        if (!TryParseTimestamp(fields.Timestamp!, out timestamp))
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
                writer.WriteBase64String("data"u8, fields.Data ?? []);
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
                if (fields.Body is not null) writer.WriteBase64String("body"u8, fields.Body);
                break;
        }

        writer.WriteEndObject();
        error = null;
        return true;
    }

    private static string[] AllowedFields(RecordedEventKind kind, string? eventType) => kind switch
    {
        RecordedEventKind.CommandLog => ["timestamp", "input", "output"],
        RecordedEventKind.SessionEvent => ["timestamp", "eventType", "channelType", "data", "elapsedTime"],
        _ when eventType == "request" => ["timestamp", "requestId", "eventType", "headers", "method", "url", "body"],
        _ => ["timestamp", "requestId", "eventType", "headers", "status", "body"],
    };

    // Go's gateway omits empty method/url/status/body (omitempty) but always writes headers, possibly null.
    private static string[] RequiredFields(RecordedEventKind kind, string? eventType) => kind switch
    {
        RecordedEventKind.CommandLog => ["timestamp", "input", "output"],
        RecordedEventKind.SessionEvent => ["timestamp", "eventType", "data", "elapsedTime"],
        _ when eventType == "request" => ["timestamp", "requestId", "eventType", "method", "url"],
        _ => ["timestamp", "requestId", "eventType", "status"],
    };

    private static string Describe(RecordedEventKind kind) => kind switch
    {
        RecordedEventKind.CommandLog => "command log",
        RecordedEventKind.SessionEvent => "session event",
        _ => "HTTP event",
    };

    // Go's time.Time marshals RFC 3339 with up to nine fractional digits and the gateway's own offset.
    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\z", RegexOptions.CultureInvariant)]
    private static partial Regex Rfc3339();

    internal static bool TryParseTimestamp(string value, out DateTimeOffset timestamp)
    {
        timestamp = default;
        if (!Rfc3339().IsMatch(value)) return false;

        // .NET keeps 100 ns ticks: drop the last two of nine digits for the parsed value only; the
        // canonical form keeps the timestamp exactly as recorded.
        var dot = value.IndexOf('.');
        if (dot > 0)
        {
            var zone = value.IndexOfAny(['Z', '+', '-'], dot);
            if (zone - dot - 1 > 7) value = string.Concat(value.AsSpan(0, dot + 8), value.AsSpan(zone));
        }

        return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.None, out timestamp);
    }

    /// <summary>Strict standard base64: padded, no whitespace, no URL-safe alphabet.</summary>
    internal static bool TryDecodeBase64(ReadOnlySpan<byte> utf8, [NotNullWhen(true)] out byte[]? bytes)
    {
        bytes = null;
        if (utf8.Length % 4 != 0) return false;
        foreach (var c in utf8)
        {
            var valid = c is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9' or (byte)'+' or (byte)'/' or (byte)'=';
            if (!valid) return false;
        }

        var buffer = new byte[Base64.GetMaxDecodedFromUtf8Length(utf8.Length)];
        if (Base64.DecodeFromUtf8(utf8, buffer, out var consumed, out var written) != OperationStatus.Done || consumed != utf8.Length) return false;
        bytes = written == buffer.Length ? buffer : buffer[..written];
        return true;
    }
}
