using Alba;
using JasperFx.CommandLine;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Wolverine;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>
/// The service under test: Program's real host in memory (Alba), on a real PostgreSQL. One per test
/// run; tests stay apart by each working in a fresh org (tenant), so nothing is wiped between them.
/// </summary>
public sealed class PamStoreHost : IAsyncLifetime
{
    public TestDatabase Database { get; private set; } = null!;
    public IAlbaHost Host { get; private set; } = null!;
    public TestClock Clock { get; } = new();
    public CapturedLogs Logs { get; } = new();
    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), $"pamstore-test-data-{Guid.NewGuid():N}");

    public async Task InitializeAsync()
    {
        Database = await TestDatabase.StartAsync();
        JasperFxEnvironment.AutoStartHost = true;
        Host = await AlbaHost.For<Program>(builder =>
        {
            builder.UseEnvironment("Testing");
            foreach (var (key, value) in TestKeys.ServiceSettings(Database.ConnectionString, DataDirectory)) builder.UseSetting(key, value);
            builder.UseSetting("Codegen:OutputPath", Path.Combine(DataDirectory, "generated"));
            builder.UseSetting("Uploads:LegacyLogsWait", LegacyLogsWait.ToString());
            builder.UseSetting("Uploads:LegacyLogsWaiting", LegacyLogsWaiting.ToString());
            builder.UseSetting("Uploads:LegacyLogsGrace", LegacyLogsGrace.ToString());
            builder.UseSetting("Uploads:BatchGrace", BatchGrace.ToString());
            builder.UseSetting("LogPages:Wait", PagesWait.ToString());
            builder.ConfigureServices(services =>
            {
                services.AddSingleton<TimeProvider>(Clock);
                services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(Logs);
                services.RunWolverineInSoloMode();
                services.DisableAllExternalWolverineTransports();
            });
        });
    }

    /// <summary>How long a legacy upload waits for its turn here: short, so a test of the refusal is quick.</summary>
    public static readonly TimeSpan LegacyLogsWait = TimeSpan.FromSeconds(2);

    /// <summary>How many legacy uploads may wait for a turn here at once: one, so a test of the next one's refusal needs few.</summary>
    public const int LegacyLogsWaiting = 1;

    /// <summary>How long a legacy body may be slow at first here before it must keep pace: short, so a test of a stalled one is quick.</summary>
    public static readonly TimeSpan LegacyLogsGrace = TimeSpan.FromSeconds(2);

    /// <summary>How long a batch's body may be slow at first here before it must keep pace: short, so a test of a stalled one is quick.</summary>
    public static readonly TimeSpan BatchGrace = TimeSpan.FromSeconds(2);

    /// <summary>How long a log page waits for its turn here: short, so a test of the refusal is quick.</summary>
    public static readonly TimeSpan PagesWait = TimeSpan.FromSeconds(1);

    private Task<ServiceProcess>? _process;

    /// <summary>Upload limits of <see cref="ProcessAsync"/>: small, so a too-large body is cheap to send.</summary>
    public const int ProcessBatchLimit = 64 * 1024;

    /// <summary>The settings the service runs with as its own process.</summary>
    public Dictionary<string, string> ProcessSettings => new(TestKeys.ServiceSettings(Database.ConnectionString, DataDirectory))
    {
        ["Uploads:MaxBatchBytes"] = ProcessBatchLimit.ToString(),
        ["Uploads:MaxLegacyLogsBytes"] = (1024 * 1024).ToString(),
    };

    /// <summary>The same service started once as its own process on Kestrel, on the same database.</summary>
    public Task<ServiceProcess> ProcessAsync() => _process ??= ServiceProcess.StartAsync(ProcessSettings);

    /// <summary>A new organisation, unseen by any other test.</summary>
    public Org NewOrg() => new(this, $"org-{Guid.NewGuid():N}");

    public async Task DisposeAsync()
    {
        if (_process is not null) await (await _process).DisposeAsync();
        await Host.DisposeAsync();
        await Database.DisposeAsync();
        if (Directory.Exists(DataDirectory)) Directory.Delete(DataDirectory, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class PamStoreCollection : ICollectionFixture<PamStoreHost>
{
    public const string Name = "pam store";
}
