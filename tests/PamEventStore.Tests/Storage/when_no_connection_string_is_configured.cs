using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PamEventStore.Storage;

namespace PamEventStore.Tests.Storage;

public sealed class when_no_connection_string_is_configured : IDisposable
{
    private readonly LocalDataDirectory _data = new(Path.Combine(Path.GetTempPath(), $"pamstore-run-{Guid.NewGuid():N}"[..24]));

    private DatabaseConnection Connection(string environment, params (string Key, string Value)[] settings) => new(
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build(),
        new HostingEnvironment { EnvironmentName = environment },
        _data,
        NullLogger<DatabaseConnection>.Instance);

    [Fact]
    public async Task production_refuses_instead_of_starting_a_database()
    {
        await using var connection = Connection(Environments.Production);

        var error = Should.Throw<InvalidOperationException>(() => connection.ConnectionString);

        error.Message.ShouldContain("ConnectionStrings:Marten");
        Directory.Exists(_data.PathOf("postgres")).ShouldBeFalse();
    }

    [Fact]
    public async Task a_configured_connection_string_is_used_as_it_is()
    {
        await using var connection = Connection(Environments.Development, ("ConnectionStrings:Marten", "Host=db.example;Database=x"));

        connection.ConnectionString.ShouldBe("Host=db.example;Database=x");
        Directory.Exists(_data.PathOf("postgres")).ShouldBeFalse();
    }

    [Fact]
    public async Task development_starts_a_local_cluster_under_the_data_directory_and_keeps_its_data_across_runs()
    {
        string first;
        await using (var run = Connection(Environments.Development))
        {
            first = run.ConnectionString;
            await Execute(first, "create table kept (id int); insert into kept values (42)");
        }

        // Stopped with the service: nothing listens any more.
        await Should.ThrowAsync<NpgsqlException>(() => Execute(first, "select 1"));

        await using (var again = Connection(Environments.Development))
        {
            again.ConnectionString.ShouldBe(first);
            (await Scalar(again.ConnectionString, "select id from kept")).ShouldBe(42);
        }

        Directory.Exists(Path.Combine(_data.PathOf("postgres"), "data")).ShouldBeTrue();
    }

    private static async Task Execute(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 3 }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<int> Scalar(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (int)(await command.ExecuteScalarAsync())!;
    }

    public void Dispose()
    {
        if (Directory.Exists(_data.Path)) Directory.Delete(_data.Path, recursive: true);
    }
}
