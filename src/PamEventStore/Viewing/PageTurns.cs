using Microsoft.Extensions.Options;
using PamEventStore.Http;

namespace PamEventStore.Viewing;

/// <summary>The node's turns for log pages (<see cref="LogPageOptions.AtOnce"/>): a page holds one from before its rows are read until it is written.</summary>
public sealed class PageTurns(IOptions<LogPageOptions> options)
{
    private readonly Turns _turns = new(options.Value.AtOnce, options.Value.Wait, options.Value.Waiting);

    public int AtOnce => _turns.AtOnce;

    /// <inheritdoc cref="Turns.TakeAsync"/>
    public Task<IDisposable?> TakeAsync(CancellationToken ct) => _turns.TakeAsync(ct);
}
