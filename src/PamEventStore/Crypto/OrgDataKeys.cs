using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Marten;
using JasperFx;
using Marten.Metadata;

namespace PamEventStore.Crypto;

/// <summary>One org's data key, wrapped (AES-256-GCM) by the master key named in <see cref="MasterKeyId"/>.</summary>
public sealed record WrappedDataKey(string KeyId, string MasterKeyId, byte[] Wrapped, DateTimeOffset CreatedAt);

/// <summary>
/// Every data key an org has had, stored in the org's own tenant, and its fingerprint key. Data keys
/// are never removed: each batch names the key it was sealed with, so retired keys are what keeps old
/// recordings readable. The fingerprint key is never rotated: stored fingerprints are compared with
/// new ones for as long as the recordings are kept.
/// </summary>
public sealed class OrgKeyRing : ITenanted
{
    public const string DocumentId = "org-key-ring";

    public string Id { get; set; } = DocumentId;
    public string? TenantId { get; set; }
    public string ActiveKeyId { get; set; } = "";
    public List<WrappedDataKey> Keys { get; set; } = [];
    public WrappedDataKey? FingerprintKey { get; set; }
}

/// <summary>An unwrapped data key, held in memory only.</summary>
public sealed record DataKey(string Id, byte[] Key);

/// <summary>What sealing an org's recordings needs: its active data key and its fingerprint key.</summary>
public sealed record OrgSealing(string OrgId, DataKey Active, ContentFingerprint Fingerprint, SessionChain Chain);

/// <summary>
/// Per-org data keys: created on an org's first recording, cached unwrapped in memory, rotated and
/// re-wrapped by the <c>rotate-keys</c> command. Other nodes pick up a rotation within
/// <see cref="ActiveKeyLifetime"/>; until then they keep sealing with the previous key, which stays valid.
/// </summary>
public sealed class OrgDataKeys(IDocumentStore store, MasterKeys masterKeys, TimeProvider clock)
{
    public static readonly TimeSpan ActiveKeyLifetime = TimeSpan.FromMinutes(5);

    /// <param name="Unopenable">Keys in the ring that could not be unwrapped (their master key is gone or they were altered).</param>
    private sealed record UnwrappedRing(
        OrgSealing Sealing, IReadOnlyDictionary<string, byte[]> Keys, IReadOnlySet<string> Unopenable, DateTimeOffset LoadedAt);

    private readonly ConcurrentDictionary<string, UnwrappedRing> _rings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _sealingLoads = new(StringComparer.Ordinal);

    /// <summary>The active data key and fingerprint key, creating them on the org's first recording.</summary>
    public async ValueTask<OrgSealing> SealingAsync(string orgId, CancellationToken ct)
    {
        if (Fresh(orgId) is { } sealing) return sealing;

        // One load per org at a time: otherwise an org's first uploads would each try to create its ring
        // (measured: 66 failed inserts as 10,000 new sessions began uploading), and every upload arriving
        // while the ring is reloaded would query it again. Those that waited take what the first loaded.
        var gate = _sealingLoads.GetOrAdd(orgId, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            return Fresh(orgId) ?? (await LoadAsync(orgId, createIfMissing: true, ct))!.Sealing;
        }
        finally
        {
            gate.Release();
        }
    }

    private OrgSealing? Fresh(string orgId) =>
        _rings.TryGetValue(orgId, out var ring) && clock.GetUtcNow() - ring.LoadedAt <= ActiveKeyLifetime ? ring.Sealing : null;

    /// <returns>The key, or null when the org has no usable key of that id.</returns>
    public async ValueTask<byte[]?> KeyAsync(string orgId, string keyId, CancellationToken ct)
    {
        if (_rings.TryGetValue(orgId, out var ring))
        {
            if (ring.Keys.TryGetValue(keyId, out var known)) return known;
            if (ring.Unopenable.Contains(keyId)) return null;
        }

        // Unknown here: another node may have rotated since this one loaded the ring.
        ring = await LoadAsync(orgId, createIfMissing: false, ct);
        return ring is not null && ring.Keys.TryGetValue(keyId, out var key) ? key : null;
    }

    /// <returns>The org's fingerprint key, or null when it has never recorded anything.</returns>
    public async ValueTask<ContentFingerprint?> FingerprintAsync(string orgId, CancellationToken ct) => (await ReadingAsync(orgId, ct))?.Fingerprint;

    /// <returns>The org's session chain key, or null when the org has no keys.</returns>
    public async ValueTask<SessionChain?> ChainAsync(string orgId, CancellationToken ct) => (await ReadingAsync(orgId, ct))?.Chain;

    private async ValueTask<OrgSealing?> ReadingAsync(string orgId, CancellationToken ct) =>
        _rings.TryGetValue(orgId, out var ring) ? ring.Sealing : (await LoadAsync(orgId, createIfMissing: false, ct))?.Sealing;

    /// <summary>Adds a new data key for the org and makes it the one new recordings are sealed with.</summary>
    public async Task<string> RotateAsync(string orgId, CancellationToken ct)
    {
        await using var session = store.LightweightSession(orgId);
        var ring = await session.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct);
        var key = NewWrappedKey(orgId, "dk");
        if (ring is null)
        {
            session.Insert(new OrgKeyRing { ActiveKeyId = key.KeyId, Keys = [key], FingerprintKey = NewWrappedKey(orgId, "fk") });
        }
        else
        {
            ring.Keys.Add(key);
            ring.ActiveKeyId = key.KeyId;
            session.Store(ring);
        }

        await session.SaveChangesAsync(ct);
        _rings.TryRemove(orgId, out _);
        return key.KeyId;
    }

    /// <summary>
    /// Re-wraps every data key of the org that is not wrapped by the active master key. A key that does
    /// not open (its master key is gone, or its wrapping was altered) is left as it is and reported: the
    /// others are re-wrapped all the same, so one lost key does not keep an org's readable keys on a
    /// master key that is to be retired.
    /// </summary>
    public async Task<RewrapResult> RewrapAsync(string orgId, CancellationToken ct)
    {
        await using var session = store.LightweightSession(orgId);
        var ring = await session.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct);
        if (ring is null) return new RewrapResult(0, []);

        var rewrapped = 0;
        var unopenable = new List<string>();
        WrappedDataKey Rewrap(WrappedDataKey key)
        {
            if (key.MasterKeyId == masterKeys.ActiveKeyId) return key;
            byte[] plain;
            try
            {
                plain = Unwrap(orgId, key);
            }
            catch (Exception e) when (e is InvalidOperationException or CryptographicException)
            {
                unopenable.Add(key.KeyId);
                return key;
            }

            rewrapped++;
            return key with
            {
                MasterKeyId = masterKeys.ActiveKeyId,
                Wrapped = AesGcmEnvelope.Seal(masterKeys.Active, plain, WrapContext(orgId, key.KeyId)),
            };
        }

        ring.Keys = ring.Keys.Select(Rewrap).ToList();
        if (ring.FingerprintKey is not null) ring.FingerprintKey = Rewrap(ring.FingerprintKey);
        if (rewrapped > 0)
        {
            session.Store(ring);
            await session.SaveChangesAsync(ct);
            _rings.TryRemove(orgId, out _);
        }

        return new RewrapResult(rewrapped, unopenable);
    }

    /// <summary>The orgs that have a key ring, i.e. every org that has stored a recording.</summary>
    public async Task<IReadOnlyList<string>> OrgsAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var rings = await session.Query<OrgKeyRing>().Where(x => x.AnyTenant()).ToListAsync(ct);
        return rings.Select(r => r.TenantId!).Order(StringComparer.Ordinal).ToList();
    }

    private async Task<UnwrappedRing?> LoadAsync(string orgId, bool createIfMissing, CancellationToken ct)
    {
        OrgKeyRing? ring;
        await using (var session = store.QuerySession(orgId))
        {
            ring = await session.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct);
        }

        if (ring is null && createIfMissing) ring = await CreateAsync(orgId, ct);
        if (ring is null) return null;
        if (ring.FingerprintKey is null) ring = await AddFingerprintKeyAsync(orgId, ct);

        // One key that does not open (its master key is gone, or it was altered) costs only the
        // batches sealed with it; the active key and the fingerprint key must open.
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var unopenable = new HashSet<string>(StringComparer.Ordinal);
        Exception? activeFailure = null;
        foreach (var key in ring.Keys)
        {
            try
            {
                keys[key.KeyId] = Unwrap(orgId, key);
            }
            catch (Exception e) when (e is CryptographicException or InvalidOperationException)
            {
                unopenable.Add(key.KeyId);
                if (key.KeyId == ring.ActiveKeyId) activeFailure = e;
            }
        }

        if (!keys.TryGetValue(ring.ActiveKeyId, out var active))
        {
            throw new OrgKeysUnavailableException(orgId, activeFailure ?? new CryptographicException($"The active data key '{ring.ActiveKeyId}' of org '{orgId}' is not in its key ring."));
        }

        byte[] fingerprintKey;
        try
        {
            fingerprintKey = Unwrap(orgId, ring.FingerprintKey!);
        }
        catch (Exception e) when (e is CryptographicException or InvalidOperationException)
        {
            throw new OrgKeysUnavailableException(orgId, e);
        }

        var sealing = new OrgSealing(orgId, new DataKey(ring.ActiveKeyId, active), new ContentFingerprint(fingerprintKey), new SessionChain(fingerprintKey));
        var unwrapped = new UnwrappedRing(sealing, keys, unopenable, clock.GetUtcNow());
        _rings[orgId] = unwrapped;
        return unwrapped;
    }

    /// <summary>A ring from before fingerprint keys existed gets one, once, whichever node gets there first.</summary>
    private async Task<OrgKeyRing> AddFingerprintKeyAsync(string orgId, CancellationToken ct)
    {
        await using var session = store.LightweightSession(orgId);
        var ring = (await session.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct))!;
        if (ring.FingerprintKey is not null) return ring;
        ring.FingerprintKey = NewWrappedKey(orgId, "fk");
        session.Store(ring);
        try
        {
            await session.SaveChangesAsync(ct);
            return ring;
        }
        catch (ConcurrencyException)
        {
            await using var reread = store.QuerySession(orgId);
            return (await reread.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct))!;
        }
    }

    private async Task<OrgKeyRing> CreateAsync(string orgId, CancellationToken ct)
    {
        var key = NewWrappedKey(orgId, "dk");
        var ring = new OrgKeyRing { ActiveKeyId = key.KeyId, Keys = [key], FingerprintKey = NewWrappedKey(orgId, "fk") };
        try
        {
            await using var session = store.LightweightSession(orgId);
            session.Insert(ring);
            await session.SaveChangesAsync(ct);
            return ring;
        }
        catch (DocumentAlreadyExistsException)
        {
            // Another request or node created the org's first key at the same moment: use theirs.
            await using var session = store.QuerySession(orgId);
            return await session.LoadAsync<OrgKeyRing>(OrgKeyRing.DocumentId, ct)
                   ?? throw new InvalidOperationException($"The key ring of org '{orgId}' vanished while it was being created.");
        }
    }

    private WrappedDataKey NewWrappedKey(string orgId, string kind)
    {
        var keyId = $"{kind}-{Guid.CreateVersion7():N}";
        var plain = RandomNumberGenerator.GetBytes(AesGcmEnvelope.KeySize);
        return new WrappedDataKey(keyId, masterKeys.ActiveKeyId, AesGcmEnvelope.Seal(masterKeys.Active, plain, WrapContext(orgId, keyId)), clock.GetUtcNow());
    }

    private byte[] Unwrap(string orgId, WrappedDataKey key)
    {
        if (!masterKeys.TryGet(key.MasterKeyId, out var master))
        {
            throw new InvalidOperationException(
                $"Data key '{key.KeyId}' of org '{orgId}' is wrapped by master key '{key.MasterKeyId}', which is not configured. " +
                "Keep retired master keys configured until `rotate-keys --rewrap` has run.");
        }

        return AesGcmEnvelope.Open(master, key.Wrapped, WrapContext(orgId, key.KeyId));
    }

    // Binds a wrapped key to its org and id, so a key copied into another org's ring does not open.
    private static byte[] WrapContext(string orgId, string keyId) =>
        Encoding.UTF8.GetBytes($"pam-data-key/v1|{orgId.Length}:{orgId}|{keyId}");
}

/// <summary>What re-wrapping an org's keys did: how many it re-wrapped, and which it could not open (left as they were).</summary>
/// <summary>
/// The org's key ring does not give its active data key or its fingerprint key on this node: a master
/// key missing from its configuration, or the ring altered. Nothing of the org can be recorded or read
/// until an operator puts that right; the request is answered 503 <c>keys-unavailable</c>.
/// </summary>
public sealed class OrgKeysUnavailableException(string orgId, Exception cause)
    : CryptographicException($"The keys of org '{orgId}' do not open on this node: {cause.Message}", cause)
{
    public string OrgId { get; } = orgId;
}

public sealed record RewrapResult(int Rewrapped, IReadOnlyList<string> Unopenable);
