using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using PamEventStore.Sessions;

namespace PamEventStore.Crypto;

/// <summary>
/// The tamper-evident chain of a session's stream: every event carries a link, an HMAC-SHA-256 under a
/// key derived from the org's fingerprint key (wrapped by the master key, which is never in the database)
/// over the link before it, the org, the session, the event's stream version, its stored type name and
/// its fields. Whoever can write to the database but does not hold the master key cannot alter, remove,
/// reorder or insert an event in the middle of a stream without the links after it failing to verify,
/// and cannot make a valid link for a stream of their own making; cutting a stream's end shows only
/// against a head kept outside the store. The session's last link is its head (answered by uploads and
/// the session endpoints as chainLength and chainHead); its <c>session_ended</c> event's link is its
/// seal (answered as seal, and logged), which a reader keeps outside the store and checks a stored
/// session against later.
/// </summary>
public sealed class SessionChain(byte[] fingerprintKey)
{
    public const int LinkSize = 32;

    // Domain separation: a link can never be mistaken for a content fingerprint made with the same org key.
    private readonly byte[] _key = HMACSHA256.HashData(fingerprintKey, "pam-session-chain/v1"u8);

    /// <summary>The link of the event stored at <paramref name="version"/>, after <paramref name="previous"/> (null for the first).</summary>
    public byte[] Link(string orgId, Guid sessionId, long version, byte[]? previous, SessionEvent e)
    {
        using var mac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        AppendText(mac, orgId);
        Span<byte> fixedPart = stackalloc byte[16 + 8];
        sessionId.TryWriteBytes(fixedPart, bigEndian: true, out _);
        BinaryPrimitives.WriteInt64BigEndian(fixedPart[16..], version);
        mac.AppendData(fixedPart);
        mac.AppendData(previous is { Length: LinkSize } ? previous : new byte[LinkSize]);
        AppendText(mac, SessionEventNames.Of(e));
        mac.AppendData(JsonSerializer.SerializeToUtf8Bytes(e with { Link = null }, e.GetType(), ChainJson.Default));
        return mac.GetHashAndReset();
    }

    /// <summary>Whether a stored link is the one this event at this place would have.</summary>
    public bool Verifies(string orgId, Guid sessionId, long version, byte[]? previous, SessionEvent e) =>
        e.Link is { Length: LinkSize } link && CryptographicOperations.FixedTimeEquals(link, Link(orgId, sessionId, version, previous, e));

    /// <summary>
    /// The events, linked in order onto a stream whose last event is at <paramref name="version"/> with
    /// link <paramref name="head"/> (0 and null for a new stream).
    /// </summary>
    public SessionEvent[] Extend(string orgId, Guid sessionId, long version, byte[]? head, IEnumerable<SessionEvent> events)
    {
        var linked = new List<SessionEvent>();
        foreach (var e in events)
        {
            var link = Link(orgId, sessionId, ++version, head, e);
            linked.Add(e with { Link = link });
            head = link;
        }

        return linked.ToArray();
    }

    // Length-prefixed, so no two (org, type) pairs give the same bytes.
    private static void AppendText(IncrementalHash mac, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, bytes.Length);
        mac.AppendData(length);
        mac.AppendData(bytes);
    }
}

/// <summary>
/// The fields a link covers, as JSON generated at compile time. Nulls are left out, so a field added to
/// an event later (fields are only ever added) leaves the links of events stored before it valid.
/// Recorded content is covered through the batch's keyed fingerprint, which is checked after decryption.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SessionStarted))]
[JsonSerializable(typeof(SessionActivated))]
[JsonSerializable(typeof(BatchUploaded))]
[JsonSerializable(typeof(BatchConflictRejected))]
[JsonSerializable(typeof(LateBatchRefused))]
[JsonSerializable(typeof(GapDetected))]
[JsonSerializable(typeof(LegacyLogsUploaded))]
[JsonSerializable(typeof(SessionEnded))]
internal sealed partial class ChainJson : JsonSerializerContext;
