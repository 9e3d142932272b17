using Marten;
using Microsoft.Extensions.Logging;
using Npgsql;
using PamEventStore.Storage;
using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Storage;

[Collection(PamStoreCollection.Name)]
public sealed class logging_the_store(PamStoreHost store)
{
    private readonly CapturedLogs _logs = new();

    private IMartenSessionLogger Log => new StoreLog(new Logger<IDocumentStore>(new LoggerFactory([_logs]))).StartSession(null!);

    [Fact]
    public void the_node_logs_its_store_s_commands_through_it() =>
        ((StoreOptions)store.Host.DocumentStore().Options).Logger().ShouldBeOfType<StoreLog>();

    [Fact]
    public void a_command_its_caller_left_is_not_an_error_of_the_node()
    {
        using var command = new NpgsqlCommand("select d.data from pam.mt_doc_pamsession as d where id = $1");

        Log.LogFailure(command, new OperationCanceledException());
        Log.LogFailure(command, new NpgsqlException("Exception while reading from stream", new OperationCanceledException()));

        _logs.Entries.ShouldBeEmpty();
    }

    [Fact]
    public void a_command_that_fails_is_an_error_naming_its_sql_and_not_its_parameters()
    {
        using var command = new NpgsqlCommand("select no_such_column from pg_class where relname = $1") { Parameters = { new NpgsqlParameter { Value = "secret-value" } } };

        Log.LogFailure(command, new PostgresException("column does not exist", "ERROR", "ERROR", "42703"));

        var entry = _logs.Entries.ShouldHaveSingleItem();
        entry.Level.ShouldBe(LogLevel.Error);
        entry.Message.ShouldContain("no_such_column");
        entry.Message.ShouldNotContain("secret-value");
    }

    [Fact]
    public void a_session_s_stream_found_started_by_a_create_at_the_same_moment_is_no_error_of_the_node()
    {
        // Two creates of one session at once: the second's stream meets the first's, and it is answered as a
        // retry of it (200), where Marten logs what failed once for the batch and twice more without SQL.
        using var command = new NpgsqlCommand("insert into pam.mt_streams (tenant_id, id, type, version) values ($1,$2,$3,$4)");
        var collision = (Marten.Exceptions.ExistingStreamIdCollisionException)System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(
            typeof(Marten.Exceptions.ExistingStreamIdCollisionException));

        Log.LogFailure(command, collision);
        Log.LogFailure(collision, "");

        _logs.Entries.Select(e => e.Level).ShouldBe([LogLevel.Information, LogLevel.Information]);
        _logs.Entries[0].Message.ShouldContain("already started");
    }

    [Fact]
    public void a_timeout_is_still_an_error()
    {
        using var command = new NpgsqlCommand("select 1");

        Log.LogFailure(command, new NpgsqlException("Exception while reading from stream", new TimeoutException()));

        _logs.Entries.ShouldHaveSingleItem().Level.ShouldBe(LogLevel.Error);
    }
}
