using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;
using JasperFx.Events;
using PamEventStore.Sessions;

namespace PamEventStore.Storage;

/// <summary>
/// Writes events that carry ciphertext into <c>mt_events.bdata</c> as
/// <c>[format 1][header length, u32 big-endian][header JSON][ciphertext]</c>.
/// Ciphertext does not compress and base64 inside jsonb would store it a third larger; the header
/// stays JSON so the metadata of a batch is still readable with plain SQL.
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

    public object Deserialize(Type type, byte[] data)
    {
        if (data.Length < 5 || data[0] != FormatVersion)
            throw new InvalidDataException($"Unknown {type.Name} storage format {(data.Length == 0 ? "(empty)" : data[0].ToString())}");

        var headerLength = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(1));
        var header = JsonSerializer.Deserialize(data.AsSpan(5, headerLength), type, RecordingHeaderJson.Default)
                     ?? throw new InvalidDataException($"Empty {type.Name} header");
        return ((IEncryptedRecording)header).WithCiphertext(data[(5 + headerLength)..]);
    }
}

/// <summary>
/// The headers' JSON, generated at compile time: a log page reads a hundred of them per request.
/// Web defaults (camelCase), the format every stored header has been written in.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BatchUploaded))]
[JsonSerializable(typeof(LegacyLogsUploaded))]
internal sealed partial class RecordingHeaderJson : JsonSerializerContext;
