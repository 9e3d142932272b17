using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using PamEventStore.LocalPostgres;

namespace PamEventStore.Storage;

/// <summary>
/// The PostgreSQL connection string: <c>ConnectionStrings:Marten</c> when configured. Otherwise,
/// outside Production, a local cluster under <c>.pamstore/postgres</c> started from the PostgreSQL
/// binaries on the machine on first use, reused across runs and stopped when the service stops.
/// Resolved lazily so commands that never touch the database (token, help) never start one.
/// </summary>
public sealed class DatabaseConnection(
    IConfiguration configuration, IHostEnvironment environment, LocalDataDirectory dataDirectory, ILogger<DatabaseConnection> logger,
    IHostApplicationLifetime? lifetime = null)
    : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private PostgresCluster? _cluster;
    private PosixSignalRegistration? _onHangUp;
    private string? _connectionString;

    public string ConnectionString
    {
        get
        {
            lock (_gate)
            {
                return _connectionString ??= configuration.GetConnectionString("Marten") is { Length: > 0 } configured
                    ? configured
                    : StartLocalCluster();
            }
        }
    }

    private string StartLocalCluster()
    {
        if (environment.IsProduction())
        {
            throw new StartRefusedException(
                "ConnectionStrings:Marten is not configured. Production never starts a local PostgreSQL: " +
                "set it (environment variable ConnectionStrings__Marten).");
        }

        var options = new PostgresClusterOptions
        {
            Directory = dataDirectory.PathOf("postgres"),
            Database = "pamstore",
            BinDirectory = configuration["LocalPostgres:BinDirectory"],
            Log = message => logger.LogInformation("Local PostgreSQL: {Message}", message),
        };

        logger.LogInformation("No ConnectionStrings:Marten configured: starting a local PostgreSQL cluster in {Directory}", options.Directory);
        try
        {
            _cluster = PostgresCluster.StartAsync(options).GetAwaiter().GetResult();
        }
        catch (PostgresDirectoryUnusableException e)
        {
            // A checkout under /root, run as root: the 'postgres' user cannot enter it; or one whose path
            // pg_ctl cannot pass to its shell. Keep the cluster where it can run, at a path derived from
            // the checkout so the next run finds it again.
            var fallback = Path.Combine("/var/tmp", $"pamstore-postgres-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(options.Directory)))[..12]}");
            // A name anyone can work out, in a directory anyone can write: kept only while it is ours alone.
            if (SharedPlaceDirectory.ClaimAsync(fallback).GetAwaiter().GetResult() is { } refusal)
            {
                throw new StartRefusedException($"{e.Message} Its fallback is not safe to use: {refusal} Remove it, or set LocalData:Directory or ConnectionStrings:Marten.");
            }

            logger.LogWarning("{Reason} Keeping the local cluster in {Fallback} instead", e.Message, fallback);
            _cluster = PostgresCluster.StartAsync(options with { Directory = fallback }).GetAwaiter().GetResult();
        }

        logger.LogInformation("Local PostgreSQL {Version} listening on 127.0.0.1:{Port}", _cluster.ServerVersion, _cluster.Port);

        // Closing the terminal sends SIGHUP, which .NET does not turn into a graceful stop (as it does
        // SIGINT and SIGTERM): without this the service dies at once, leaving its local PostgreSQL running.
        if (lifetime is not null && !OperatingSystem.IsWindows())
        {
            _onHangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                lifetime.StopApplication();
            });
        }

        return _cluster.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        _onHangUp?.Dispose();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}
