using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using PamEventStore.Http;

namespace PamEventStore.Gateway;

/// <summary>
/// How much upload a node holds at once. Every event batch being read, checked, queued for its
/// transaction or written holds its declared size here until it is decided (or dropped, its caller
/// gone), even when its caller stopped waiting for the answer earlier; when the next one
/// would take the total over <see cref="UploadOptions.MaxBytesInFlight"/>, it is turned away before its
/// body is read (503 with <c>Retry-After</c>), and the gateway sends it again later from the same
/// offset, as it does after any failed upload. So a database that stalls makes gateways wait, instead of
/// making the node hold every upload that arrives meanwhile in memory until it runs out. And one gateway
/// holds at most <see cref="UploadOptions.MaxBytesInFlightPerGateway"/> of it, so that no gateway (a slow
/// link, a stolen token trickling bodies) keeps the others' uploads out.
/// </summary>
/// <remarks>
/// One upload is always let in when nothing else is held, whatever its size, so that a limit set
/// below <see cref="UploadOptions.MaxBatchBytes"/> cannot refuse a batch forever; and a gateway's first
/// when it holds nothing, as far as the node's limit allows. Legacy <c>/logs</c>
/// uploads, whole recordings, take turns instead (<see cref="WaitForLegacyTurnAsync"/>).
/// </remarks>
public sealed class UploadAdmission
{
    private readonly long _limit;
    private readonly long _holderLimit;
    private readonly Turns _legacyTurns;
    private readonly Counter<long>? _turnedAway;
    private readonly Lock _gate = new();
    private readonly HeldByKey _heldBy = new();
    private long _held;

    /// <param name="meters">Where <c>pam.uploads.bytes_held</c>, <c>pam.uploads.legacy_waiting</c> and <c>pam.uploads.turned_away</c> are published (meter <c>PamEventStore.Uploads</c>); none without it.</param>
    public UploadAdmission(IOptions<UploadOptions> options, IMeterFactory? meters = null)
    {
        _limit = options.Value.MaxBytesInFlight;
        _holderLimit = options.Value.MaxBytesInFlightPerGateway;
        _legacyTurns = new Turns(options.Value.LegacyLogsAtOnce, options.Value.LegacyLogsWait, options.Value.LegacyLogsWaiting);
        if (meters?.Create(UploadCommits.MeterName) is not { } meter) return;

        _turnedAway = meter.CreateCounter<long>("pam.uploads.turned_away", "{upload}", "Uploads answered 503 busy: batches past the node's limit of upload bytes or past their gateway's share of it (upload=batch), legacy uploads with no turn in time or past those waiting for one (upload=legacy)");
        meter.CreateObservableGauge("pam.uploads.bytes_held", () => Held, "By", "Bytes of event batches the node holds, from reading to commit (limit: Uploads:MaxBytesInFlight)");
        meter.CreateObservableGauge("pam.uploads.legacy_waiting", () => LegacyWaiting, "{upload}", "Legacy uploads waiting for a turn (limit: Uploads:LegacyLogsWaiting)");
    }

    /// <summary>Bytes of uploads held now.</summary>
    public long Held => Volatile.Read(ref _held);

    public long Limit => _limit;

    /// <summary>What the uploads of one holder (a gateway) may hold at once.</summary>
    public long HolderLimit => _holderLimit;

    /// <summary>Bytes held now by the uploads of <paramref name="holder"/>.</summary>
    public long HeldBy(string holder)
    {
        lock (_gate) return _heldBy.Of(holder);
    }

    /// <summary>Who holds an upload's share: a gateway of an org (ids hold no control characters, so the two cannot run together).</summary>
    public static string Holder(string orgId, string gatewayId) => orgId + "\n" + gatewayId;
    /// <summary>Legacy uploads read and stored at once.</summary>
    public int LegacyTurns => _legacyTurns.AtOnce;

    /// <summary>
    /// A turn for a legacy upload, to take before its body is read and to dispose once it is decided;
    /// null when none came within <see cref="UploadOptions.LegacyLogsWait"/>, or when
    /// <see cref="UploadOptions.LegacyLogsWaiting"/> uploads already wait for one. A wait, not an outright
    /// refusal as for batches: a gateway sends its legacy upload once, at the end of a session.
    /// </summary>
    public async Task<IDisposable?> WaitForLegacyTurnAsync(CancellationToken ct)
    {
        if (await _legacyTurns.TakeAsync(ct) is { } turn) return turn;

        _turnedAway?.Add(1, new KeyValuePair<string, object?>("upload", "legacy"));
        return null;
    }

    /// <summary>Legacy uploads waiting for a turn now.</summary>
    public int LegacyWaiting => _legacyTurns.Waiting;

    /// <summary>Room for an upload of <paramref name="bytes"/>, held until the returned lease is disposed; null when there is none.</summary>
    public Lease? TryAdmit(long bytes, string? holder = null) => TryAdmit(bytes, holder, out _);

    /// <summary>
    /// Room for an upload of <paramref name="bytes"/> by <paramref name="holder"/> (null: counted against the
    /// node's limit only), held until the returned lease is disposed; null when there is none, and
    /// <paramref name="holderFull"/> says whether it was the holder's share that was full.
    /// </summary>
    public Lease? TryAdmit(long bytes, string? holder, out bool holderFull)
    {
        lock (_gate)
        {
            var ofHolder = holder is null ? 0 : _heldBy.Of(holder);
            holderFull = ofHolder > 0 && ofHolder + bytes > _holderLimit;
            if (holderFull || (_held > 0 && _held + bytes > _limit))
            {
                _turnedAway?.Add(1, new KeyValuePair<string, object?>("upload", "batch"));
                return null;
            }

            Volatile.Write(ref _held, _held + bytes);
            if (holder is not null) _heldBy.Add(holder, bytes);
        }

        return new Lease(this, bytes, holder);
    }

    private void Release(long bytes, string? holder)
    {
        lock (_gate)
        {
            Volatile.Write(ref _held, _held - bytes);
            if (holder is not null) _heldBy.Remove(holder, bytes);
        }
    }

    /// <summary>An admitted upload's share of the limit; disposing it (once or more) gives it back.</summary>
    public sealed class Lease(UploadAdmission admission, long bytes, string? holder) : IDisposable
    {
        private int _released;

        /// <summary>
        /// The same share, now held by whoever takes the returned lease (the upload's transaction, which
        /// may outlive the request); disposing this one no longer gives anything back.
        /// </summary>
        public Lease HandOver() =>
            Interlocked.Exchange(ref _released, 1) == 0
                ? new Lease(admission, bytes, holder)
                : throw new InvalidOperationException("This lease was already given back or handed over.");

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) admission.Release(bytes, holder);
        }
    }
}
