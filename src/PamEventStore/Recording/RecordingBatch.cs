using System.Security.Cryptography;

namespace PamEventStore.Recording;

/// <summary>
/// A validated batch of recorded events in canonical form: a compact JSON array whose objects have a
/// fixed field order and normalised encodings. Hashes, encryption and replay all work on these bytes,
/// never on what the gateway sent, so two uploads that mean the same thing are byte-identical.
/// </summary>
public sealed class RecordingBatch
{
    private readonly byte[] _canonical;
    private readonly int[] _eventEnds;
    private readonly DateTimeOffset[] _timestamps;
    private byte[]? _sha256;

    internal RecordingBatch(RecordedEventKind kind, byte[] canonical, int[] eventEnds, DateTimeOffset[] timestamps)
    {
        Kind = kind;
        _canonical = canonical;
        _eventEnds = eventEnds;
        _timestamps = timestamps;
    }

    public RecordedEventKind Kind { get; }

    public int EventCount => _eventEnds.Length;

    /// <summary>The canonical JSON array of every event in the batch.</summary>
    public ReadOnlyMemory<byte> Canonical => _canonical;

    public byte[] Sha256() => _sha256 ??= SHA256.HashData(_canonical);

    /// <summary>
    /// SHA-256 of the canonical array holding only the first <paramref name="count"/> events: the hash
    /// a stored batch of that many events would have. This is how a re-upload that extends a stored
    /// batch is recognised without decrypting the stored one.
    /// </summary>
    public byte[] PrefixSha256(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, EventCount);
        if (count == EventCount) return Sha256();

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(_canonical, 0, _eventEnds[count - 1]);
        hash.AppendData("]"u8);
        return hash.GetHashAndReset();
    }

    /// <summary>The events from <paramref name="firstEvent"/> on, as a canonical batch of their own.</summary>
    public RecordingBatch Skip(int firstEvent)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstEvent);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(firstEvent, EventCount);
        if (firstEvent == 0) return this;

        // Event i starts one byte after the end of event i-1: that byte is the separating comma.
        var start = _eventEnds[firstEvent - 1] + 1;
        var end = _eventEnds[^1];
        var canonical = new byte[end - start + 2];
        canonical[0] = (byte)'[';
        _canonical.AsSpan(start, end - start).CopyTo(canonical.AsSpan(1));
        canonical[^1] = (byte)']';

        var ends = new int[EventCount - firstEvent];
        for (var i = 0; i < ends.Length; i++) ends[i] = _eventEnds[firstEvent + i] - start + 1;

        return new RecordingBatch(Kind, canonical, ends, _timestamps[firstEvent..]);
    }

    public DateTimeOffset EarliestEventAt => _timestamps.Min();

    public DateTimeOffset LatestEventAt => _timestamps.Max();
}
