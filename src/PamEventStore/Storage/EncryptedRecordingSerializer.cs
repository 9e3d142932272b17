using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;
using JasperFx.Events;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// Writes events that carry ciphertext into <c>mt_events.bdata</c> as
/// <c>[format 1][header length, u32 big-endian][header JSON][ciphertext]</c>.
/// Ciphertext does not compress (content is compressed before it is encrypted: <see cref="Crypto.PackedContent"/>)
/// and base64 inside jsonb would store it a third larger; the header stays JSON so the metadata of a
/// batch is still readable with plain SQL.
/// </summary>
public sealed class EncryptedRecordingSerializer : IEventBinarySerializer
{
    private const byte FormatVersion = 1;


    public byte[] Serialize(Type type, object data)
    {
        var recording = (IEncryptedRecording)data;
        var header = JsonSerializer.SerializeToUtf8Bytes(data, type, RecordingHeaderJson.Default);
        var bytes = new byte[1 + 4 + header.Length + recording.Ciphertext.Length];
        bytes[0] = FormatVersion;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(1), (uint)header.Length);
        header.CopyTo(bytes, 5);
        recording.Ciphertext.CopyTo(bytes, 5 + header.Length);
        return bytes;
    }

    /// <summary>
    /// A row that does not read (altered, truncated) becomes an event no reader mistakes for a
    /// recording: the batch reads as missing where it should be, instead of failing every read of
    /// the stream it is in.
    /// </summary>
    public object Deserialize(Type type, byte[] data)
    {
        try
        {
            if (data.Length < 5 || data[0] != FormatVersion) return Unreadable(type);
            var headerLength = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(1));
            if (headerLength > (uint)(data.Length - 5)) return Unreadable(type);
            var header = JsonSerializer.Deserialize(data.AsSpan(5, (int)headerLength), type, RecordingHeaderJson.Default);
            return header is IEncryptedRecording recording && IsWhole(recording)
                ? recording.WithCiphertext(data[(5 + (int)headerLength)..])
                : Unreadable(type);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException)
        {
            return Unreadable(type);
        }
    }

    /// <summary>A header that parses but lacks what opening and checking a batch needs (an altered row) reads as unreadable too.</summary>
    private static bool IsWhole(IEncryptedRecording recording) => recording switch
    {
        BatchUploaded b => b is { ContentFingerprint: not null, OffsetFingerprint: not null, KeyId: not null, UploadedBy: not null },
        LegacyLogsUploaded l => l is { ContentFingerprint: not null, KeyId: not null, UploadedBy: not null },
        _ => false,
    };

    private static readonly Actor Nobody = new("unknown", "unknown", null, null);

    private static object Unreadable(Type type) => type == typeof(BatchUploaded)
        ? new BatchUploaded(-1, -1, null, 0, 0, default, default, [], [], 0, "", Nobody, default)
        : new LegacyLogsUploaded(0, null, null, [], 0, "", Nobody, default);
}

/// <summary>
/// The headers' JSON, generated at compile time: a log page reads a hundred of them per request.
/// Web defaults (camelCase), the format every stored header has been written in.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BatchUploaded))]
[JsonSerializable(typeof(LegacyLogsUploaded))]
internal sealed partial class RecordingHeaderJson : JsonSerializerContext;
