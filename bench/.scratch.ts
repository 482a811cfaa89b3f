import { hashSecret, verifySecret } from '../identity/secrets.ts';
for (const n of [1024, 4096]) {
  const h = await hashSecret('x'.repeat(43), n);
  let t = performance.now();
  for (let i = 0; i < 50; i++) await verifySecret('x'.repeat(43), h);
  console.log(n, 'serial ms/verify', (performance.now() - t) / 50);
  t = performance.now();
  await Promise.all(Array.from({length: 400}, () => verifySecret('x'.repeat(43), h)));
  console.log(n, 'parallel ms/verify', (performance.now() - t) / 400);
}
