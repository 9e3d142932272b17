using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Npgsql;
using PamEventStore.Viewing;

namespace PamEventStore.Tests.Viewing;

/// <summary>
/// A log page is written as its batches are read. The database failing before the first batch must
/// still leave the error handler a clean response to answer with; failing after, the page must be cut,
/// never finished with a problem document appended to half a page.
/// </summary>
public sealed class when_a_log_page_fails_while_it_is_written
{
    private sealed class Lifetime : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted { get; set; }

        public bool Aborted { get; private set; }

        public void Abort() => Aborted = true;
    }

    private static (DefaultHttpContext Context, Lifetime Lifetime, MemoryStream Body) Response()
    {
        var context = new DefaultHttpContext();
        var lifetime = new Lifetime();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        var body = new MemoryStream();
        context.Response.Body = body;
        return (context, lifetime, body);
    }

    /// <summary><paramref name="read"/> batches, then the connection to PostgreSQL breaks.</summary>
    private static async IAsyncEnumerable<OpenedBatch> BatchesThenBrokenConnection(int read)
    {
        for (var i = 0; i < read; i++)
        {
            await Task.Yield();
            yield return new OpenedBatch(null, Encoding.UTF8.GetBytes($$"""[{"n":{{i}}}]"""));
        }

        throw new NpgsqlException("Exception while reading from stream", new IOException("connection reset"));
    }

    [Fact]
    public async Task failing_before_its_first_batch_it_writes_nothing_and_leaves_the_answer_to_the_error_handler()
    {
        var (context, lifetime, body) = Response();

        await Should.ThrowAsync<NpgsqlException>(new LogPage(BatchesThenBrokenConnection(0), false, 3).ExecuteAsync(context));

        // What the error handler then writes goes out alone: nothing of the page is waiting in front of it.
        await context.Response.BodyWriter.FlushAsync();
        body.Length.ShouldBe(0);
        context.Response.HasStarted.ShouldBeFalse();
        lifetime.Aborted.ShouldBeFalse();
    }

    [Fact]
    public async Task failing_after_it_began_it_cuts_the_connection_instead_of_finishing_the_page()
    {
        var (context, lifetime, body) = Response();

        await new LogPage(BatchesThenBrokenConnection(2), false, 3).ExecuteAsync(context);

        lifetime.Aborted.ShouldBeTrue();
        Encoding.UTF8.GetString(body.ToArray()).ShouldNotContain("batchCount");
    }

    [Fact]
    public async Task a_page_that_does_not_fail_is_written_whole()
    {
        var (context, lifetime, body) = Response();

        await new LogPage(Batches(2), false, 2).ExecuteAsync(context);

        lifetime.Aborted.ShouldBeFalse();
        Encoding.UTF8.GetString(body.ToArray()).ShouldBe("""{"logs":[{"n":0},{"n":1}],"hasMore":false,"batchCount":2,"batches":[]}""");
    }

    private static async IAsyncEnumerable<OpenedBatch> Batches(int count)
    {
        await foreach (var batch in BatchesThenBrokenConnection(count).Take(count)) yield return batch;
    }
}
