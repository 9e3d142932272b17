using JasperFx;
using JasperFx.CodeGeneration;
using Marten;
using Microsoft.Extensions.Options;
using PamEventStore;
using PamEventStore.Crypto;
using PamEventStore.Gateway;
using PamEventStore.Http;
using PamEventStore.Security;
using PamEventStore.Sessions;
using PamEventStore.Storage;
using PamEventStore.Viewing;
using Wolverine;
using Wolverine.Http;
using Wolverine.Marten;

try
{
    var builder = WebApplication.CreateBuilder(args);

    // Generating code or a token never connects: Marten gets a connection string it will not use
    // instead of a local PostgreSQL being started for nothing.
    if (args is ["token" or "codegen" or "help" or "?", ..] && string.IsNullOrEmpty(builder.Configuration.GetConnectionString("Marten")))
    {
        builder.Configuration["ConnectionStrings:Marten"] = "Host=unused.invalid;Database=unused";
    }

    var dataDirectory = LocalDataDirectory.FromConfiguration(builder.Configuration);

    builder.Services.AddSingleton(dataDirectory);
    builder.Services.AddSingleton(TimeProvider.System);
    builder.Services.AddSingleton<DatabaseConnection>();
    builder.Services.AddOptions<LogPageOptions>().BindConfiguration(LogPageOptions.Section)
        .Validate(o => o.MaxBytes > 0 && o.AtOnce > 0, "LogPages:MaxBytes and LogPages:AtOnce must be positive.")
        .Validate(o => o.Wait >= TimeSpan.Zero && o.Wait <= TimeSpan.FromMinutes(1), "LogPages:Wait must be between 0 and a minute.")
        .Validate(o => o.MinBytesPerSecond > 0 && o.Grace > TimeSpan.FromSeconds(1), "LogPages:MinBytesPerSecond must be positive and LogPages:Grace over a second.")
        .ValidateOnStart();
    builder.Services.AddOptions<UploadOptions>().BindConfiguration(UploadOptions.Section)
        .Validate(o => o.MaxBatchBytes > 0 && o.MaxLegacyLogsBytes > 0 && o.EndedSessionGrace >= TimeSpan.Zero, "Uploads limits must be positive.")
        .Validate(o => o.MaxBatchBytes <= UploadOptions.MaxBodyBytes && o.MaxLegacyLogsBytes <= UploadOptions.MaxBodyBytes && o.EndedSessionGrace <= UploadOptions.MaxEndedSessionGrace,
            $"Uploads:MaxBatchBytes and Uploads:MaxLegacyLogsBytes must be at most {UploadOptions.MaxBodyBytes} and Uploads:EndedSessionGrace at most {UploadOptions.MaxEndedSessionGrace.TotalDays:0} days.")
        .Validate(o => o.CommitWriters > 0 && o.MaxSessionsPerCommit > 0 && o.MaxBytesInFlight > 0, "Uploads:CommitWriters, Uploads:MaxSessionsPerCommit and Uploads:MaxBytesInFlight must be positive.")
        .Validate(o => o.LegacyLogsAtOnce > 0 && o.LegacyLogsWait >= TimeSpan.Zero && o.LegacyLogsWait <= TimeSpan.FromMinutes(10), "Uploads:LegacyLogsAtOnce must be positive and Uploads:LegacyLogsWait between 0 and 10 minutes.")
        .Validate(o => o.LegacyLogsWaiting >= 0 && o.LegacyLogsMinBytesPerSecond > 0 && o.LegacyLogsGrace > TimeSpan.FromSeconds(1), "Uploads:LegacyLogsWaiting must not be negative, Uploads:LegacyLogsMinBytesPerSecond must be positive and Uploads:LegacyLogsGrace over a second.")
        .Validate(o => o.MaxBytesInFlightPerGateway > 0 && o.BatchMinBytesPerSecond > 0 && o.BatchGrace > TimeSpan.FromSeconds(1), "Uploads:MaxBytesInFlightPerGateway and Uploads:BatchMinBytesPerSecond must be positive and Uploads:BatchGrace over a second.")
        .Validate(o => o.CommitWait > TimeSpan.Zero && o.CommitWait <= TimeSpan.FromMinutes(10), "Uploads:CommitWait must be positive and at most 10 minutes.")
        .ValidateOnStart();

    // Kestrel's own limit is only a backstop above ours, so oversized uploads get our problem answer.
    builder.WebHost.ConfigureKestrel((context, kestrel) =>
    {
        var uploads = context.Configuration.GetSection(UploadOptions.Section).Get<UploadOptions>() ?? new UploadOptions();
        kestrel.Limits.MaxRequestBodySize = Math.Max((long)uploads.MaxBatchBytes, uploads.MaxLegacyLogsBytes) + 1024 * 1024;
    });

    builder.Services.AddSingleton(sp => MasterKeys.FromConfiguration(builder.Configuration, builder.Environment, dataDirectory));
    builder.Services.AddHostedService<MasterKeysAtStartup>();
    builder.Services.AddSingleton<OrgDataKeys>();
    builder.Services.AddSingleton<RecordingCipher>();
    builder.Services.AddSingleton<StoredBatchMemory>();
    builder.Services.AddSingleton<SessionBindings>();
    builder.Services.AddSingleton<UploadCommits>();
    builder.Services.AddSingleton<UploadAdmission>();
    builder.Services.AddSingleton<PageTurns>();
    builder.Services.AddSingleton<SessionSignals>();
    builder.Services.AddSingleton<LiveTailTurns>();
    builder.Services.AddOptions<LiveTailOptions>().BindConfiguration(LiveTailOptions.Section)
        .Validate(o => o.AtOnce > 0 && o.AtOncePerOrg > 0 && o.Poll > TimeSpan.Zero && o.KeepAlive > TimeSpan.Zero, "LiveTail:AtOnce, LiveTail:AtOncePerOrg, LiveTail:Poll and LiveTail:KeepAlive must be positive.")
        .ValidateOnStart();

    builder.AddPamSecurity(dataDirectory);
    builder.Services.AddPamErrorResponses();

    // Wolverine logs a create body it cannot read at Error, with a stack trace, under the body's type name;
    // the caller is answered 400 invalid-request. A client's mistake is not an error of the node.
    builder.Logging.AddFilter(typeof(PamEventStore.Platform.CreateSession).FullName, level => level < LogLevel.Error);

    builder.Services
        .AddMarten(sp =>
        {
            var options = new StoreOptions();
            options.ConfigurePamStore(sp.GetRequiredService<DatabaseConnection>().ConnectionString);
            options.Logger(new StoreLog(sp.GetRequiredService<ILogger<IDocumentStore>>()));
            return options;
        })
        .UseLightweightSessions()
        .ApplyAllDatabaseChangesOnStartup()
        .IntegrateWithWolverine();

    builder.Host.UseWolverine(opts =>
    {
        opts.ApplicationAssembly = typeof(Program).Assembly;

        // ASP.NET's authorization and exception handlers look like message handlers to Wolverine's
        // naming conventions; message handlers, when there are some, are registered explicitly.
        opts.Discovery.DisableConventionalDiscovery();

        // Handlers are generated ahead of time into Internal/Generated (`dotnet run -- codegen write`):
        // no Roslyn in the process, fast start, and a test fails when the committed code is stale.
        opts.CodeGeneration.TypeLoadMode = TypeLoadMode.Static;
        opts.CodeGeneration.GeneratedCodeOutputPath = builder.Configuration["Codegen:OutputPath"]
                                                      ?? Path.Combine(builder.Environment.ContentRootPath, "Internal", "Generated");
    });
    builder.Services.AddWolverineHttp();

    // A JSON body (creating a session) that names a field twice is refused: otherwise the last one counts,
    // where a proxy or access rule in front of the service may have read the first.
    builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.AllowDuplicateProperties = false);

    // Disposed whatever the command line does: an invalid argument after the local PostgreSQL has started
    // must stop it too.
    await using var app = builder.Build();

    app.UsePamErrorResponses();
    app.UseAuthentication();
    app.UseAuthorization();
    app.UseCanonicalSessionIds();
    app.UseJsonBodies();

    app.MapHealth();
    app.MapWolverineEndpoints(opts =>
    {
        opts.RequireAuthorizeOnAll();

        // The tenant is the org in the caller's token, for every Marten session an endpoint gets.
        opts.TenantId.IsClaimTypeNamed(PamClaims.OrgId);
        opts.TenantId.AssertExists();
        opts.AddParameterHandlingStrategy(new CallerParameter());
    });

    // Settings given on the command line (`--Uploads:MaxBatchBytes=1000`, `--urls ...`) were read into the
    // configuration by the builder; JasperFx would take a first one for an unknown flag of its `run` command
    // and refuse to start. With nothing but settings, the service simply runs; anything else is a command.
    if (OnlySettings(args))
    {
        await app.RunAsync();
        return 0;
    }

    return await app.RunJasperFxCommands(args);
}
catch (Exception e) when (StartRefusedException.Reason(e) is { } reason)
{
    Console.Error.WriteLine($"PamEventStore does not start: {reason}");
    return 1;
}

// `key=value` (bare, or after `--` or `/`), as ASP.NET's command line takes any setting; `--key value`
// only for a section's key (`--Uploads:MaxBatchBytes 1000`) or the host's `--urls`, `--environment`,
// `--contentRoot`, `--applicationName`: a lone `--flag` is JasperFx's, or a typo it refuses.
static bool OnlySettings(string[] args)
{
    string[] hostKeys = ["urls", "environment", "contentRoot", "applicationName"];
    for (var i = 0; i < args.Length; i++)
    {
        var argument = args[i];
        var setting = argument.StartsWith("--", StringComparison.Ordinal) ? argument[2..]
            : argument.StartsWith('/') || argument.StartsWith('-') ? argument[1..]
            : argument;
        if (setting.IndexOf('=') > 0) continue;
        if (setting.Length == argument.Length) return false; // a bare word: a command
        if (!setting.Contains(':') && !hostKeys.Contains(setting, StringComparer.OrdinalIgnoreCase)) return false;
        if (++i >= args.Length) return false;
    }

    // No arguments at all is the plain `dotnet run`: the service runs, and a failure to start is ours to say in one line.
    return true;
}
