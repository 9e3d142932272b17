using Marten;

namespace PamEventStore.Http;

public static class Health
{
    /// <summary>Anyone may ask; the database is asked at most this often.</summary>
    private static readonly TimeSpan Remembered = TimeSpan.FromSeconds(2);

    private sealed record Answer(DateTimeOffset At, bool Healthy);

    // One reference, swapped whole: concurrent requests never read half of an update.
    private static Answer _last = new(DateTimeOffset.MinValue, false);

    /// <summary><c>GET /health</c> (and <c>HEAD</c>, as load balancers ask), anonymous: 200 when the service's database answers in time and takes writes, 503 when it does not.</summary>
    public static void MapHealth(this WebApplication app) =>
        app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], async (IDocumentStore store, TimeProvider clock, CancellationToken ct) =>
        {
            var last = _last;
            if (clock.GetUtcNow() - last.At > Remembered)
            {
                last = new Answer(clock.GetUtcNow(), await DatabaseAnswersAsync(store, ct));
                _last = last;
            }

            return last.Healthy
                ? Results.Ok(new { status = "ok" })
                : Problems.DatabaseUnavailable(ErrorResponses.DatabaseRetryAfterSeconds).ToResult();
        }).AllowAnonymous();

    /// <summary>How long the database has to answer: a load balancer asks often and gives up soon.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The database answers within <see cref="Patience"/> and takes writes: a primary turned read-only
    /// (a failover, <c>default_transaction_read_only</c>) refuses every upload, so this node is not healthy.
    /// The question is left to finish on its own when it takes longer (opening a connection to a frozen
    /// server waits for the connect timeout, whatever the caller's token says).
    /// </summary>
    private static async Task<bool> DatabaseAnswersAsync(IDocumentStore store, CancellationToken ct)
    {
        var asked = AskAsync(store);
        try
        {
            return await asked.WaitAsync(Patience, ct);
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private static async Task<bool> AskAsync(IDocumentStore store)
    {
        try
        {
            await using var session = store.QuerySession();
            var writable = await session.QueryAsync<bool>("select not pg_is_in_recovery() and current_setting('transaction_read_only') = 'off'");
            return writable.SingleOrDefault();
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return false;
        }
    }
}
