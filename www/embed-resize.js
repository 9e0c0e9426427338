// Optional for a page holding attnlab iframes (embed.html): fits each frame to its content.
// The frame posts {context: 'iframe.resize', src, height}; we match it by event.source.
addEventListener('message', (event) => {
  const d = event.data;
  if (!d || d.context !== 'iframe.resize' || typeof d.height !== 'number') return;
  for (const frame of document.getElementsByTagName('iframe')) {
    if (frame.contentWindow === event.source) frame.style.height = Math.ceil(d.height) + 'px';
  }
});
