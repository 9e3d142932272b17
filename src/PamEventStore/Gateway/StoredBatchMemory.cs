using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Memory;

namespace PamEventStore.Gateway;

/// <summary>
/// What this node has seen committed: the SHA-256 of the exact request bodies stored at recent offsets
/// (in memory only). A stored batch never changes, so a body seen stored at an offset is a duplicate
/// there: an exact retry (the gateway re-reads the same bytes from its file) is answered without a
/// database round trip or a lock. Anything not remembered (another node stored it, it was evicted,
/// the bytes differ) goes the full way through the session aggregate. Entries live minutes, not
/// longer: the answer relies on the commit being durable, which a failover to a lagging replica or a
/// point-in-time restore would undo.
/// </summary>
public sealed class StoredBatchMemory : IDisposable
{
    /// <summary>
    /// Offsets remembered, least recently used evicted: ~400 bytes each, ~10 MB at most. A gateway retries
    /// on its next flush, 10 s later, so this covers a node at 1,000 uploads/s for 25 s, at 2,500 uploads/s
    /// (above what one node takes) for those 10 s; a retry older than what is remembered goes through its
    /// session and is answered the same, only slower. The peak RSS of a full benchmark run follows it:
    /// 257-288 MiB with 100,000, up to 287 with 50,000, 254 with 25,000 (BENCHMARKS.md).
    /// </summary>
    public const int Entries = 25_000;

    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    private static readonly MemoryCacheEntryOptions EntryOptions = new() { Size = 1, AbsoluteExpirationRelativeToNow = Lifetime };

    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = Entries, CompactionPercentage = 0.1 });

    private sealed record StoredBodies(string GatewayId, byte[][] Sha256s)
    {
        public bool Holds(byte[] bodySha256) => Sha256s.Any(sha => sha.AsSpan().SequenceEqual(bodySha256));
    }

    public static byte[] BodyHash(ReadOnlySpan<byte> body) => SHA256.HashData(body);

    /// <summary>True when exactly this body is known to be stored at this offset of the gateway's session.</summary>
    public bool IsStored(string orgId, Guid sessionId, string gatewayId, long startOffset, byte[] bodySha256) =>
        _cache.TryGetValue((orgId, sessionId, startOffset), out StoredBodies? stored)
        && stored!.GatewayId == gatewayId
        && stored.Holds(bodySha256);

    /// <summary>Call only once the body's content is committed at that offset (accepted, or found there).</summary>
    public void RememberStored(string orgId, Guid sessionId, string gatewayId, long startOffset, byte[] bodySha256)
    {
        var key = (orgId, sessionId, startOffset);

        // Several bodies at one offset only when a re-upload extended the stored batch: rare, tiny.
        var bodies = _cache.TryGetValue(key, out StoredBodies? known) && known!.GatewayId == gatewayId
            ? known.Holds(bodySha256) ? known.Sha256s : [.. known.Sha256s, bodySha256]
            : [bodySha256];
        _cache.Set(key, new StoredBodies(gatewayId, bodies), EntryOptions);
    }

    public void Dispose() => _cache.Dispose();
}
