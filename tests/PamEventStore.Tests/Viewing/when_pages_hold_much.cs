using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PamEventStore.Viewing;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Viewing;

/// <summary>A page's memory is bounded by what it holds, not by what the session holds on average, and a node serves a few at a time.</summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_pages_hold_much(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private long MaxBytes => store.Host.Services.GetRequiredService<IOptions<LogPageOptions>>().Value.MaxBytes;

    private PageTurns Turns => store.Host.Services.GetRequiredService<PageTurns>();

    /// <summary>Every page turn of the node, as if that many pages were being served; fails if one is not free.</summary>
    private Task<HeldTurns> TakeEveryPageTurnAsync() => HeldTurns.TakeAllAsync(Turns.AtOnce, () => Turns.TakeAsync(CancellationToken.None));

    /// <summary>One event of about 59 KB: four fit in a page of 256 KiB, five do not.</summary>
    private static string Large(int second) => Batch(Terminal(second, new string((char)('a' + second % 26), 44_000)));

    /// <summary>Thirty one-line batches, then ten large ones: the session's average batch is small.</summary>
    private async Task<Guid> SmallThenLargeBatches()
    {
        var session = await _org.CreateSessionAsync();
        long offset = 0;
        for (var i = 0; i < 30; i++, offset += 100) (await _org.UploadAsync(session, offset, Lines(i, 1))).Status.ShouldBe(HttpStatusCode.OK);
        for (var i = 0; i < 10; i++, offset += 100_000) (await _org.UploadAsync(session, offset, Large(i))).Status.ShouldBe(HttpStatusCode.OK);
        return session;
    }

    [Fact]
    public async Task a_page_of_large_batches_ends_at_its_byte_bound_whatever_the_sessions_average()
    {
        MaxBytes.ShouldBe(256 * 1024);
        var session = await SmallThenLargeBatches();

        var page = await _org.LogsAsync(session, "offset=30&limit=10");

        var body = page.Body;
        body.GetProperty("batchCount").GetInt32().ShouldBe(4);
        body.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        body.GetProperty("logs").GetArrayLength().ShouldBe(4);
        body.GetProperty("batches").EnumerateArray().Select(b => (b.GetProperty("sequence").GetInt64(), b.GetProperty("status").GetString()))
            .ShouldBe(Enumerable.Range(30, 4).Select(i => ((long)i, (string?)"ok")));
        Encoding.UTF8.GetByteCount(body.GetProperty("logs").GetRawText()).ShouldBeLessThan((int)MaxBytes);
    }

    [Fact]
    public async Task following_batch_count_over_cut_pages_walks_every_batch_once()
    {
        var session = await SmallThenLargeBatches();
        var seen = new List<long>();
        long cursor = 0;
        bool hasMore;
        do
        {
            var page = (await _org.LogsAsync(session, $"offset={cursor}&limit=100")).Body;
            seen.AddRange(page.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("sequence").GetInt64()));
            cursor += page.GetProperty("batchCount").GetInt32();
            hasMore = page.GetProperty("hasMore").GetBoolean();
        }
        while (hasMore);

        seen.ShouldBe(Enumerable.Range(0, 40).Select(i => (long)i));
    }

    [Fact]
    public async Task a_batch_larger_than_the_bound_still_reads_on_a_page_of_its_own()
    {
        var session = await _org.CreateSessionAsync();
        var huge = Batch(Terminal(0, new string('h', 225_000)));
        Encoding.UTF8.GetByteCount(huge).ShouldBeGreaterThan((int)MaxBytes);
        (await _org.UploadAsync(session, 0, huge)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadAsync(session, 1_000_000, Lines(0, 1))).Status.ShouldBe(HttpStatusCode.OK);

        var first = (await _org.LogsAsync(session, "offset=0&limit=10")).Body;
        var second = (await _org.LogsAsync(session, "offset=1&limit=10")).Body;

        first.GetProperty("batchCount").GetInt32().ShouldBe(1);
        first.GetProperty("hasMore").GetBoolean().ShouldBeTrue();
        first.GetProperty("batches")[0].GetProperty("status").GetString().ShouldBe("ok");
        second.GetProperty("batchCount").GetInt32().ShouldBe(1);
        second.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task a_page_cut_after_a_row_moved_out_of_its_place_still_moves_on()
    {
        // Rows moved one place later: batch 1's row holds batch 0, batch 2's row holds the large batch 1.
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 1))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadAsync(session, 100, Batch(Terminal(1, new string('h', 225_000))))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.UploadAsync(session, 1_000_000, Lines(2, 1))).Status.ShouldBe(HttpStatusCode.OK);
        foreach (var (target, source) in new[] { (2L, 1L), (1L, 0L) })
        {
            (await StoredEvents.ExecuteAsync(store,
                $"update pam.mt_events set bdata = (select bdata from pam.mt_events where {StoredEvents.BatchRow.Replace("@batchId", "@sourceId")}) where {StoredEvents.BatchRow}",
                [.. StoredEvents.BatchRowParameters(_org, session, target), ("sourceId", PamEventStore.Sessions.RecordedBatch.IdFor(session, source))])).ShouldBe(1);
        }

        var page = (await _org.LogsAsync(session, "offset=1&limit=10")).Body;

        page.GetProperty("batchCount").GetInt32().ShouldBe(2);
        page.GetProperty("hasMore").GetBoolean().ShouldBeFalse();
        page.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()).ShouldBe(["ok", "missing"]);
    }

    [Fact]
    public async Task a_page_without_a_turn_in_time_is_turned_away_and_served_when_asked_again()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2))).Status.ShouldBe(HttpStatusCode.OK);

        Reply busy;
        using (await TakeEveryPageTurnAsync())
        {
            busy = (await _org.LogsAsync(session)).ShouldBeProblem(HttpStatusCode.ServiceUnavailable, "busy");
        }

        busy.Response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromSeconds(1));
        busy.Body.GetProperty("pagesAtOnce").GetInt32().ShouldBe(Turns.AtOnce);
        (await _org.LogsAsync(session)).Body.GetProperty("batchCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task a_page_waiting_for_a_turn_is_served_when_one_comes_free()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2))).Status.ShouldBe(HttpStatusCode.OK);

        Task<Reply> waiting;
        using (await TakeEveryPageTurnAsync())
        {
            waiting = _org.LogsAsync(session);
            await Task.Delay(PamStoreHost.PagesWait / 4);
            waiting.IsCompleted.ShouldBeFalse();
        }

        (await waiting).Body.GetProperty("batchCount").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task every_page_gives_its_turn_back_whatever_its_answer()
    {
        var session = await SmallThenLargeBatches();

        for (var i = 0; i < Turns.AtOnce + 1; i++)
        {
            (await _org.LogsAsync(session, "offset=30&limit=10")).Status.ShouldBe(HttpStatusCode.OK);
            (await _org.LogsAsync(Guid.NewGuid())).Status.ShouldBe(HttpStatusCode.NotFound);
            (await _org.LogsAsync(session, "offset=1000")).Status.ShouldBe(HttpStatusCode.OK);
        }

        (await TakeEveryPageTurnAsync()).Dispose();
    }
}
