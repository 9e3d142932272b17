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
/// making the node hold every upload that arrives meanwhile in memory until it runs out.
/// </summary>
/// <remarks>
/// One upload is always let in when nothing else is held, whatever its size, so that a limit set
/// below <see cref="UploadOptions.MaxBatchBytes"/> cannot refuse a batch forever. Legacy <c>/logs</c>
/// uploads, whole recordings, take turns instead (<see cref="WaitForLegacyTurnAsync"/>).
/// </remarks>
public sealed class UploadAdmission
{
    private readonly long _limit;
    private readonly Turns _legacyTurns;
    private readonly Counter<long>? _turnedAway;
    private long _held;

    /// <param name="meters">Where <c>pam.uploads.bytes_held</c>, <c>pam.uploads.legacy_waiting</c> and <c>pam.uploads.turned_away</c> are published (meter <c>PamEventStore.Uploads</c>); none without it.</param>
    public UploadAdmission(IOptions<UploadOptions> options, IMeterFactory? meters = null)
    {
        _limit = options.Value.MaxBytesInFlight;
        _legacyTurns = new Turns(options.Value.LegacyLogsAtOnce, options.Value.LegacyLogsWait, options.Value.LegacyLogsWaiting);
        if (meters?.Create(UploadCommits.MeterName) is not { } meter) return;

        _turnedAway = meter.CreateCounter<long>("pam.uploads.turned_away", "{upload}", "Uploads answered 503 busy: batches past the node's limit of upload bytes (upload=batch), legacy uploads with no turn in time or past those waiting for one (upload=legacy)");
        meter.CreateObservableGauge("pam.uploads.bytes_held", () => Held, "By", "Bytes of event batches the node holds, from reading to commit (limit: Uploads:MaxBytesInFlight)");
        meter.CreateObservableGauge("pam.uploads.legacy_waiting", () => LegacyWaiting, "{upload}", "Legacy uploads waiting for a turn (limit: Uploads:LegacyLogsWaiting)");
    }

    /// <summary>Bytes of uploads held now.</summary>
    public long Held => Interlocked.Read(ref _held);

    public long Limit => _limit;

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
    public Lease? TryAdmit(long bytes)
    {
        while (true)
        {
            var held = Interlocked.Read(ref _held);
            if (held > 0 && held + bytes > _limit)
            {
                _turnedAway?.Add(1, new KeyValuePair<string, object?>("upload", "batch"));
                return null;
            }

            if (Interlocked.CompareExchange(ref _held, held + bytes, held) == held) return new Lease(this, bytes);
        }
    }

    /// <summary>An admitted upload's share of the limit; disposing it (once or more) gives it back.</summary>
    public sealed class Lease(UploadAdmission admission, long bytes) : IDisposable
    {
        private int _released;

        /// <summary>
        /// The same share, now held by whoever takes the returned lease (the upload's transaction, which
        /// may outlive the request); disposing this one no longer gives anything back.
        /// </summary>
        public Lease HandOver() =>
            Interlocked.Exchange(ref _released, 1) == 0
                ? new Lease(admission, bytes)
                : throw new InvalidOperationException("This lease was already given back or handed over.");

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) Interlocked.Add(ref admission._held, -bytes);
        }
    }
}
